"""Search, extractive answers and recall@k on a small real corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qdrant_client import QdrantClient

from conftest import write_docs
from textbook_api.rag.chunking import Chunk, load_corpus
from textbook_api.rag.embedders import LocalEmbedder
from textbook_api.rag.indexer import sync_index
from textbook_api.rag.query_cache import QueryVectorCache
from textbook_api.rag.search import NO_ANSWER, answer, recall_at_k, search

from .conftest import BOOK


def test_search_answer_and_recall(tmp_path: Path, client: QdrantClient,
                                  embedder: LocalEmbedder) -> None:
    chunks = load_corpus(write_docs(tmp_path / "docs", BOOK),
                         count_tokens=embedder.count_tokens)
    sync_index(chunks, embedder, client, "book")

    passages = search(client, "book", embedder, "What keeps a walking robot balanced?", 3)
    assert len(passages) == 3
    assert passages[0].url.startswith("/docs/locomotion")
    zmp = next(p for p in passages if p.url == "/docs/locomotion#zero-moment-point")
    assert zmp.breadcrumb == "Locomotion › Zero moment point" and zmp.title == "Locomotion"
    assert passages[0].score >= passages[1].score >= passages[2].score

    text, mode = answer("What keeps a walking robot balanced?", passages)
    assert mode == "extractive"
    assert "support polygon" in text and "[1]" in text
    assert "/docs/locomotion" in text
    assert answer("anything", []) == (NO_ANSWER, "extractive")

    assert recall_at_k(client, "book", embedder, chunks, k=3) >= 0.9
    assert search(client, "book", embedder, "   ", 3) == []


def qdrant_recall(client: QdrantClient, embedder: LocalEmbedder, chunks: list[Chunk],
                  k: int) -> float:
    """recall@k the slow way: one Qdrant search per heading."""
    headings = sorted({c.heading_path[-1] for c in chunks})
    hits = 0
    for heading in headings:
        points = client.query_points("book", query=embedder.embed_query(heading), limit=k,
                                     with_payload=["heading_path"]).points
        hits += any((p.payload or {})["heading_path"][-1] == heading for p in points)
    return hits / len(headings)


def test_recall_ranks_as_qdrant_search_and_cached_vectors_change_nothing(
        tmp_path: Path, client: QdrantClient, embedder: LocalEmbedder) -> None:
    chunks = load_corpus(write_docs(tmp_path / "docs", BOOK),
                         count_tokens=embedder.count_tokens)
    sync_index(chunks, embedder, client, "book")
    cache = QueryVectorCache(tmp_path / "cache", embedder)
    for k in (1, 2, 3):
        expected = qdrant_recall(client, embedder, chunks, k)
        assert recall_at_k(client, "book", embedder, chunks, k=k) == expected
        assert recall_at_k(client, "book", embedder, chunks, k=k, queries=cache) == expected
    assert cache.embedded == 0 and cache.reused == len({c.heading_path[-1] for c in chunks})

    with np.load(cache.path) as data:  # the same file, claimed by another model
        np.savez(cache.path, model_id=np.array("another/model"), keys=data["keys"],
                 vectors=data["vectors"])
    cache.embed_queries(["Zero moment point"])  # is not trusted: embedded again
    assert (cache.embedded, cache.reused) == (1, 0)
