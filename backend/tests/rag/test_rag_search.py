"""Search, extractive answers and recall@k on a small real corpus."""

from __future__ import annotations

from pathlib import Path

from qdrant_client import QdrantClient

from conftest import write_docs
from textbook_api.rag.chunking import load_corpus
from textbook_api.rag.embedders import LocalEmbedder
from textbook_api.rag.indexer import sync_index
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
