"""Where the time of `POST /api/v1/query` goes: embedding, search, answer assembly.

Usage: python bench/bench_query_breakdown.py [--queries 100] [--data-dir DIR]
Indexes the textbook (`populate-embeddings` into a temporary DATA_DIR, unless --data-dir names
one already indexed), then times, per question, `run_query()` -- what the endpoint calls -- and
each of its parts on the same handle: the store lease, the collection check, the query's
embedding, the Qdrant search and the extractive answer. Baseline: the raw Qdrant search, in the
same run; the ratio end-to-end/raw is printed, and how much of the total the parts explain.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from prerequisites import require, runtime

require("bench_query_breakdown", runtime())

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")
SUBJECTS = ["the zero moment point", "a Kalman filter", "inverse kinematics", "a ROS 2 node",
            "series elastic actuators", "sim-to-real transfer", "tactile sensing",
            "model predictive control", "the support polygon", "a lidar scan", "grasp quality",
            "domain randomisation", "whole-body control", "visual odometry"]
OPENINGS = ["What is", "How does one use", "Why does a humanoid need", "Explain", "What limits"]


def timed(samples: list[float], call: Callable[[], T]) -> T:
    start = time.perf_counter()
    result = call()
    samples.append((time.perf_counter() - start) * 1000)
    return result


def index_textbook(data_dir: Path) -> None:
    env = {**os.environ, "DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "pipeline", "populate-embeddings"], cwd=ROOT, env=env,
                   check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--data-dir", type=Path, help="an already indexed DATA_DIR")
    args = parser.parse_args()
    work = None if args.data_dir else Path(tempfile.mkdtemp(prefix="bench-breakdown-"))
    data_dir = args.data_dir or work
    assert data_dir is not None
    try:
        if work is not None:
            start = time.perf_counter()
            index_textbook(work)
            print(f"textbook indexed in {time.perf_counter() - start:.1f} s")
        os.environ["DATA_DIR"] = str(data_dir)
        os.environ.pop("DATABASE_URL", None)
        sys.path.insert(0, str(ROOT / "backend"))
        from textbook_api.config import get_settings
        from textbook_api.rag.search import extractive_answer, search
        from textbook_api.rag.store import require_collection
        from textbook_api.services.retrieval import get_embedder, reader_store, run_query

        settings = get_settings()
        if not (data_dir / "qdrant").exists() and not settings.qdrant_url:
            print(f"prerequisite missing: no index under {data_dir} (run populate-embeddings)")
            return 2
        embedder = get_embedder(settings)
        collection = settings.qdrant_collection
        questions = [f"{OPENINGS[i % len(OPENINGS)]} {SUBJECTS[(i * 3) % len(SUBJECTS)]} "
                     f"(case {i})?" for i in range(args.queries)]
        parts: dict[str, list[float]] = {name: [] for name in (
            "store lease", "collection check", "embed question", "qdrant search",
            "answer assembly")}
        raw: list[float] = []
        total: list[float] = []
        with reader_store(settings) as held:  # keeps the lease warm, as a burst of queries does
            run_query(settings, "warm-up question about balance", 5)
            for question in questions:
                result = timed(total, lambda: run_query(settings, question, 5))
                assert result.passages, "the index answered no passages"

                def lease() -> None:
                    with reader_store(settings):
                        pass

                timed(parts["store lease"], lease)
                timed(parts["collection check"], lambda: require_collection(
                    held, collection, embedder.model_id, embedder.dimension))
                vector = timed(parts["embed question"], lambda: embedder.embed_query(question))
                timed(parts["qdrant search"], lambda: held.query_points(
                    collection, query=vector, limit=5, with_payload=True, with_vectors=False))
                passages = search(held, collection, embedder, question, 5, verify=False)
                timed(parts["answer assembly"], lambda: extractive_answer(question, passages))
                timed(raw, lambda: held.query_points(collection, query=vector, limit=5,
                                                     with_payload=True))
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)

    def line(name: str, values: list[float]) -> str:
        p95 = float(np.percentile(np.array(values), 95))
        return (f"{name:28s} p50 {statistics.median(values):7.2f} ms   p95 {p95:7.2f} ms   "
                f"mean {statistics.fmean(values):7.2f} ms")

    print(f"{args.queries} questions, textbook index, extractive answers (no Cohere key)")
    print(line("run_query() end to end", total))
    for name, values in parts.items():
        share = statistics.fmean(values) / statistics.fmean(total)
        print(f"{line('  ' + name, values)}   {share:6.1%} of the mean")
    explained = sum(statistics.fmean(v) for v in parts.values()) / statistics.fmean(total)
    print(f"parts explain {explained:.0%} of run_query()'s mean")
    print(f"baseline raw qdrant search: {line('', raw).strip()}")
    print(f"ratio run_query()/raw search, p50: "
          f"{statistics.median(total) / statistics.median(raw):.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
