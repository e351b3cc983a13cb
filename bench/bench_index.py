"""Indexing benchmark, through the operation as a user runs it.

Usage: uv run --frozen python bench/bench_index.py [--chunks 2500] [--corpus textbook|generated]

For each corpus (the textbook, copied from frontend/docs, and a generated Markdown corpus of
about --chunks chunks, written into a temp dir) it runs `python -m pipeline
populate-embeddings` in a subprocess with a DATA_DIR of its own: a full run into an empty
store, then a no-op re-run. In the same run it measures the raw encoder (the packaged model's
`embed_documents` on the same chunks, in this process) before and after the operation's runs.
Printed: wall and CPU times, texts/s, and the ratios no-op/full (goal <= 5 %) and full-run
throughput/raw-encoder throughput (goal >= 0.9), the latter for the whole process (start-up
and model load included), for the indexing steps (chunk, embed, write, validate) that the
operation itself times, and in texts per CPU second (which other load on a shared machine
disturbs far less than wall time). Asserts nothing; exits 2 in one line when a prerequisite is
missing.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import shutil
import subprocess  # nosec B404: runs this interpreter on the pipeline, fixed argv
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from prerequisites import require, runtime

require("bench_index", runtime())

ROOT = Path(__file__).resolve().parents[1]
TEXTBOOK = ROOT / "frontend" / "docs"
INDEXING_STEPS = ("chunk", "embed", "write", "validate")

TOPICS = ["balance", "gait", "torque", "friction", "lidar", "camera", "kalman filter",
          "policy", "reward", "actuator", "gripper", "motion planning", "simulation",
          "latency", "safety", "odometry", "impedance", "trajectory", "tactile sensing",
          "calibration", "whole-body control", "grasp quality", "state estimation",
          "domain randomisation", "inverse kinematics"]
ASPECTS = ["basics", "failure modes", "tuning", "limits", "hardware", "testing", "history",
           "examples", "trade-offs", "metrics", "pitfalls", "practice"]
WORDS = ("robot controller sensor joint model signal force contact frame noise estimate "
         "loop gain phase step foot hand arm camera image point cloud map plan goal "
         "reward value update filter measure error bound stable fast slow safe torque").split()


def fail(message: str) -> None:
    print(f"bench_index: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_prerequisites() -> None:
    """Everything a run needs, checked before any timing: one line and exit 2 otherwise."""
    try:
        import pipeline  # noqa: F401
        from textbook_api.rag.embedders import packaged_model_files
    except ImportError as error:
        fail(f"{error.name} is not importable: run `uv sync --frozen --all-groups` and start"
             " the bench with `uv run --frozen python bench/bench_index.py`")
    from textbook_api.rag.errors import ModelFilesError

    try:
        packaged_model_files()
    except ModelFilesError as error:
        fail(f"the packaged embedding model is missing ({error}): run `uv sync --frozen`")
    if not any(TEXTBOOK.glob("*.md*")):
        fail(f"no textbook docs in {TEXTBOOK}")


def generate_corpus(root: Path, chunks: int) -> None:
    """Chapters of sections of varied length (some with code) until about ``chunks`` chunks."""
    from textbook_api.rag.chunking import load_corpus

    rng = random.Random(14)  # nosec B311: a reproducible corpus, not security
    root.mkdir(parents=True)
    chapter = 0
    estimate = 0
    while estimate < chunks:
        title = f"Chapter {chapter}: {rng.choice(TOPICS).title()} for humanoids"
        parts = [f"---\ntitle: '{title}'\nsidebar_position: {chapter + 1}\n---\n# {title}\n",
                 f"This chapter covers {', '.join(rng.sample(TOPICS, 3))}.\n"]
        for section in range(rng.randint(6, 14)):
            topic, aspect = rng.choice(TOPICS), rng.choice(ASPECTS)
            parts.append(f"## {topic.title()} {aspect} ({chapter}.{section})\n")
            for _ in range(rng.randint(1, 5)):
                sentences = [
                    f"The {topic} of the {rng.choice(WORDS)} {rng.choice(WORDS)} changes"
                    f" when the {rng.choice(WORDS)} {rng.choice(WORDS)} is"
                    f" {rng.choice(WORDS)} at {rng.randint(1, 999)} Hz." for _ in
                    range(rng.randint(3, 9))]
                parts.append(" ".join(sentences) + "\n")
            if rng.random() < 0.3:
                parts.append(f"```python\n{topic.replace(' ', '_')}_gain = "
                             f"{rng.random():.3f}\nrobot.apply({topic.replace(' ', '_')}"
                             "_gain)\n```\n")
        (root / f"{chapter:03d}-chapter.md").write_text("\n".join(parts), encoding="utf-8")
        chapter += 1
        if chapter % 10 == 0:
            estimate = len(load_corpus(root))
    print(f"generated {chapter} chapters into {root}")


@dataclass(frozen=True)
class OperationRun:
    wall: float
    cpu: float
    code: int
    steps: dict[str, float]
    embedded: int
    recall: str

    @property
    def indexing(self) -> float:
        return sum(self.steps.get(name, 0.0) for name in INDEXING_STEPS)


def run_operation(docs: Path, data_dir: Path, min_recall: str | None) -> OperationRun:
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "QDRANT_URL", "QDRANT_PATH", "QDRANT_COLLECTION")}
    env.update(DATA_DIR=str(data_dir), EMBEDDER="local", DOCS_DIR=str(docs))
    argv = [sys.executable, "-m", "pipeline", "populate-embeddings"]
    if min_recall is not None:
        argv += ["--min-recall", min_recall]
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,  # nosec
                            check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        fail(f"populate-embeddings exited {result.returncode}: {' / '.join(tail)}")
    steps = {match.group(1): float(match.group(2)) for match in re.finditer(
        r"^==> \[\d+/\d+\] (\S+):.*?\n(?:.*\n)*?    ok \(([\d.]+)s\)$", result.stdout, re.M)}
    embedded = re.search(r"; (\d+) texts embedded;", result.stdout)
    recall = re.search(r"(recall@\d+ = [\d.]+)", result.stdout)
    return OperationRun(wall, cpu, result.returncode, steps,
                        int(embedded.group(1)) if embedded else 0,
                        recall.group(1) if recall else "recall ?")


def raw_encoder_rate(docs: Path, sample: int | None) -> tuple[int, float, float]:
    """(chunks, texts/s, texts per CPU second) of the packaged model's embed_documents on the
    corpus's chunks (a seeded random ``sample`` of them, when given)."""
    from textbook_api.rag.chunking import load_corpus
    from textbook_api.rag.embedders import LocalEmbedder

    embedder = LocalEmbedder()
    texts = [chunk.embed_text for chunk in load_corpus(
        docs, count_tokens=embedder.count_tokens, max_tokens=embedder.max_tokens)]
    chunks = len(texts)
    if sample is not None and sample < chunks:
        texts = random.Random(7).sample(texts, sample)  # nosec B311: not security
    embedder.embed_documents(texts[:8])  # warm-up: first-call allocations
    started, cpu = time.perf_counter(), time.process_time()
    embedder.embed_documents(texts)
    return (chunks, len(texts) / (time.perf_counter() - started),
            len(texts) / (time.process_time() - cpu))


def bench(name: str, docs: Path, work: Path, min_recall: str | None,
          sample: int | None) -> None:
    chunks, raw_before, raw_cpu_before = raw_encoder_rate(docs, sample)
    full = run_operation(docs, work / "data", min_recall)
    noop = run_operation(docs, work / "data", min_recall)
    _, raw_after, raw_cpu_after = raw_encoder_rate(docs, sample)
    raw = (raw_before + raw_after) / 2
    raw_cpu = (raw_cpu_before + raw_cpu_after) / 2
    steps = ", ".join(f"{step} {seconds:.2f}s" for step, seconds in full.steps.items())
    noop_steps = ", ".join(f"{step} {seconds:.2f}s" for step, seconds in noop.steps.items())
    print(f"\n{name}: {chunks} chunks")
    sampled = f" on {sample} of them" if sample is not None and sample < chunks else ""
    print(f"  raw encoder{sampled}: {raw:7.1f} texts/s  (before {raw_before:.1f}, after"
          f" {raw_after:.1f}); {raw_cpu:.2f} texts per CPU second")
    print(f"  full run:         {full.wall:7.2f} s wall, {full.cpu:7.2f} s CPU,"
          f" {full.embedded} texts embedded, {full.recall}")
    print(f"                    steps: {steps}")
    print(f"  no-op re-run:     {noop.wall:7.2f} s wall, {noop.cpu:7.2f} s CPU,"
          f" {noop.embedded} texts embedded")
    print(f"                    steps: {noop_steps}")
    whole = full.embedded / full.wall / raw
    indexing = full.embedded / full.indexing / raw if full.indexing else float("nan")
    print(f"  ratio no-op/full wall:                      {noop.wall / full.wall:6.1%}"
          "  (goal <= 5%)")
    print(f"  ratio no-op/full CPU:                       {noop.cpu / full.cpu:6.1%}")
    print(f"  ratio full-run/raw-encoder throughput:      {whole:6.3f}"
          "  (whole process, start-up and model load included)")
    print(f"  ratio indexing-steps/raw-encoder throughput: {indexing:5.3f}  (goal >= 0.9)")
    print(f"  ratio full-run/raw-encoder texts per CPU second: "
          f"{full.embedded / full.cpu / raw_cpu:5.3f}  (whole process; robust on a busy machine)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=2500,
                        help="size of the generated corpus in chunks (default 2500)")
    parser.add_argument("--raw-sample", type=int, metavar="N",
                        help="time the raw encoder on a random N of the chunks (default: all;"
                        " for a machine too busy to embed the corpus three times)")
    parser.add_argument("--corpus", choices=("textbook", "generated"), action="append",
                        help="corpus to run (repeatable; default: both)")
    args = parser.parse_args()
    check_prerequisites()
    corpora = args.corpus or ["textbook", "generated"]
    work = Path(tempfile.mkdtemp(prefix="bench-index-"))
    try:
        if "textbook" in corpora:
            docs = Path(shutil.copytree(TEXTBOOK, work / "textbook" / "docs"))
            bench("textbook", docs, work / "textbook", None, args.raw_sample)
        if "generated" in corpora:
            docs = work / "generated" / "docs"
            generate_corpus(docs, args.chunks)
            # Generated headings repeat topics and aspects, so recall is not what is measured
            # here: the gate is off, the validation work still runs.
            bench("generated", docs, work / "generated", "0", args.raw_sample)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
