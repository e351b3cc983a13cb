"""Indexing benchmark: the sync pipeline against the raw encoder, no-op and one-file re-runs.

Usage: python bench/bench_index.py [DOCS_DIR] [--batch-size N]
(DOCS_DIR defaults to frontend/docs; with no doc there, a synthetic corpus is generated.)
Prints figures and ratios against baselines measured in the same run; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from prerequisites import require, runtime

require("bench_index", runtime())

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from textbook_api.rag.chunking import iter_doc_files, load_corpus  # noqa: E402
from textbook_api.rag.embedders import LocalEmbedder  # noqa: E402
from textbook_api.rag.indexer import sync_index  # noqa: E402
from textbook_api.rag.store import open_store  # noqa: E402

TOPICS = ["balance", "gait", "torque", "friction", "lidar", "camera", "kalman", "policy",
          "reward", "actuator", "gripper", "planning", "simulation", "latency", "safety"]


def synthetic_corpus(root: Path, files: int = 12, sections: int = 6) -> None:
    for f in range(files):
        parts = [f"---\ntitle: Chapter {f}\n---\n# Chapter {f}\n\nOverview of chapter {f}.\n"]
        for s in range(sections):
            topic = TOPICS[(f * sections + s) % len(TOPICS)]
            body = " ".join(
                f"The {topic} of robot {f}-{s} is studied in experiment {k}, where the "
                f"controller adjusts {TOPICS[(k + s) % len(TOPICS)]} at {k * 10} Hz."
                for k in range(14))
            parts.append(f"## {topic.title()} in setting {f}.{s}\n\n{body}\n")
        (root / f"chapter-{f:02d}.md").write_text("\n".join(parts), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("docs", nargs="?", default=str(ROOT / "frontend" / "docs"))
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-index-"))
    try:
        docs = Path(args.docs)
        if not docs.is_dir() or not iter_doc_files(docs):
            print(f"no docs in {docs}: generating a synthetic corpus")
            docs = work / "docs"
            docs.mkdir()
            synthetic_corpus(docs)
        else:  # work on a copy: the one-file-changed step edits a file
            docs = Path(shutil.copytree(docs, work / "docs"))
        embedder = LocalEmbedder(batch_size=args.batch_size)
        chunks = load_corpus(docs, count_tokens=embedder.count_tokens)
        texts = [c.embed_text for c in chunks]
        print(f"corpus: {len(chunks)} chunks from {len(iter_doc_files(docs))} files, "
              f"batch size {args.batch_size}")
        embedder.embed_documents(texts[:8])  # warm-up

        t0 = time.perf_counter()
        embedder.embed_documents(texts)
        raw = time.perf_counter() - t0
        raw_rate = len(texts) / raw
        print(f"raw encoder:         {raw:7.2f} s  {raw_rate:7.1f} texts/s")

        with open_store(work / "store") as client:
            full = sync_index(chunks, embedder, client, "bench", batch_size=args.batch_size)
            full_rate = full.texts_embedded / full.seconds
            print(f"full index (sync):   {full.seconds:7.2f} s  {full_rate:7.1f} texts/s"
                  f"  (embedded {full.texts_embedded})")
            print(f"  ratio index/raw throughput: {full_rate / raw_rate:.3f}  (goal >= 0.9)")

            t0 = time.perf_counter()
            again_chunks = load_corpus(docs, count_tokens=embedder.count_tokens)
            noop = sync_index(again_chunks, embedder, client, "bench",
                              batch_size=args.batch_size)
            noop_total = time.perf_counter() - t0
            print(f"no-op re-run:        {noop.seconds:7.3f} s sync "
                  f"({noop_total:.3f} s with re-chunking), texts embedded "
                  f"{noop.texts_embedded}")
            print(f"  ratio no-op/full: {noop.seconds / full.seconds:.2%} sync, "
                  f"{noop_total / full.seconds:.2%} with re-chunking  (goal <= 5 %)")

            target = max(iter_doc_files(docs), key=lambda p: p.stat().st_size)
            text = target.read_text(encoding="utf-8")
            paragraphs = text.split("\n\n")
            index = next(i for i in range(len(paragraphs) - 1, -1, -1)
                         if paragraphs[i].strip() and not paragraphs[i].lstrip().startswith(
                             ("#", "```", "~~~", "---", "import", "export", "<", ":::")))
            paragraphs[index] += " This sentence was added by the benchmark."
            target.write_text("\n\n".join(paragraphs), encoding="utf-8")
            changed = load_corpus(docs, count_tokens=embedder.count_tokens)
            before = {c.point_id: c.content_hash for c in chunks}
            expected = sum(1 for c in changed if before.get(c.point_id) != c.content_hash)
            one = sync_index(changed, embedder, client, "bench", batch_size=args.batch_size)
            rel = target.relative_to(docs)
            verdict = "OK" if one.texts_embedded == expected else "MISMATCH"
            print(f"one file changed ({rel}): texts embedded {one.texts_embedded}, "
                  f"changed chunks {expected}, deleted {one.deleted}, "
                  f"{one.seconds:.3f} s  -> {verdict}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
