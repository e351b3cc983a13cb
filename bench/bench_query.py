"""Query latency over a 10,000-chunk synthetic collection (Qdrant local mode).

Usage: python bench/bench_query.py [--points 10000] [--queries 200]
Vectors of the synthetic corpus are generated directly (unit vectors near a few hundred
real embedded sentences) to save time; queries are real questions embedded by the
packaged local model inside ``search()``. Baseline: the raw Qdrant search with the query
vectors precomputed (no embedder), measured in the same run; the ratio is printed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from prerequisites import require, runtime

require("bench_query", runtime())

import numpy as np  # noqa: E402
from qdrant_client import models  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from textbook_api.rag.embedders import LocalEmbedder  # noqa: E402
from textbook_api.rag.search import search  # noqa: E402
from textbook_api.rag.store import ensure_collection, open_store  # noqa: E402

SUBJECTS = ["the zero moment point", "a Kalman filter", "inverse kinematics", "a ROS 2 node",
            "series elastic actuators", "sim-to-real transfer", "tactile sensing",
            "model predictive control", "the support polygon", "a lidar scan",
            "grasp quality", "domain randomisation", "whole-body control", "visual odometry"]
VERBS = ["How does", "Why does", "When should we use", "What limits", "How do we tune"]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    work = Path(tempfile.mkdtemp(prefix="bench-query-"))
    try:
        embedder = LocalEmbedder(batch_size=32)
        seeds = [f"{v} {s} matter for humanoid robot {i}?" for i, (v, s) in
                 enumerate((v, s) for v in VERBS for s in SUBJECTS)]
        centers = np.array(embedder.embed_documents(seeds), dtype=np.float32)
        picks = rng.integers(0, len(centers), args.points)
        vectors = centers[picks] + rng.normal(0, 0.04, (args.points, embedder.dimension))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        questions = [f"{VERBS[i % len(VERBS)]} {SUBJECTS[(i * 7) % len(SUBJECTS)]} "
                     f"work in case {i}?" for i in range(args.queries)]

        with open_store(work / "store") as client:
            ensure_collection(client, "bench", embedder.model_id, embedder.dimension)
            t0 = time.perf_counter()
            for start in range(0, args.points, 1000):
                client.upsert("bench", wait=True, points=[
                    models.PointStruct(
                        id=str(uuid.uuid4()), vector=vectors[i].tolist(),
                        payload={"title": f"Doc {i}", "url": f"/docs/d{i}",
                                 "breadcrumb": f"Doc {i} › Section", "text": seeds[picks[i]],
                                 "heading_path": [f"Doc {i}"], "model_id": embedder.model_id})
                    for i in range(start, min(start + 1000, args.points))])
            print(f"collection: {args.points} points written in "
                  f"{time.perf_counter() - t0:.1f} s")

            query_vectors = [embedder.embed_query(q) for q in questions]
            raw: list[float] = []
            for vector in query_vectors:  # baseline: Qdrant alone
                t0 = time.perf_counter()
                client.query_points("bench", query=vector, limit=5, with_payload=True)
                raw.append((time.perf_counter() - t0) * 1000)
            full: list[float] = []
            for question in questions:  # search(): embed + check + Qdrant
                t0 = time.perf_counter()
                passages = search(client, "bench", embedder, question, 5)
                full.append((time.perf_counter() - t0) * 1000)
                assert len(passages) == 5
        for name, values in (("raw qdrant search", raw), ("search() with embedder", full)):
            print(f"{name:24s} p50 {statistics.median(values):6.1f} ms   "
                  f"p95 {percentile(values, 95):6.1f} ms   ({len(values)} queries)")
        print(f"ratio p95 search()/raw: {percentile(full, 95) / percentile(raw, 95):.2f}x; "
              f"p95 goal <= 50 ms: {'met' if percentile(full, 95) <= 50 else 'NOT met'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
