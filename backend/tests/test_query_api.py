"""POST /api/v1/query over a tmp corpus indexed with the real model into real Qdrant local mode."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import FakeCohere, write_docs
from textbook_api.config import Settings
from textbook_api.main import create_app
from textbook_api.rag.chunking import load_corpus
from textbook_api.rag.indexer import sync_index
from textbook_api.rag.store import ensure_collection
from textbook_api.services import retrieval

KEY = "sk-cohere-SECRET-90210"

DOCS = {
    "locomotion.md": """
        # Locomotion

        Walking robots must balance while moving their feet.

        ## Zero moment point

        The zero moment point must stay inside the support polygon formed by the feet
        for a walking robot to remain dynamically balanced.
        """,
    "ros/nodes.md": """
        ---
        title: ROS 2 nodes
        slug: /ros2/nodes
        ---
        # ROS 2 nodes

        A node is a process that performs computation in a ROS 2 graph.

        ## Publishers and subscribers

        Nodes exchange messages on named topics through publishers and subscribers.
        """,
}


@pytest.fixture
def api(settings_env: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app()) as client:
        yield client
    retrieval.release_readers()


def index(tmp_path: Path) -> Settings:
    """Index DOCS through the same factory the API reads with."""
    docs = write_docs(tmp_path / "docs", DOCS)
    settings = Settings()
    embedder = retrieval.get_embedder(settings)
    chunks = load_corpus(docs, count_tokens=embedder.count_tokens, max_tokens=embedder.max_tokens)
    with retrieval.open_writer_store(settings) as client:
        sync_index(chunks, embedder, client, settings.qdrant_collection)
    return settings


def ask(api: TestClient, question: Any, **extra: Any) -> Any:
    return api.post("/api/v1/query", json={"question": question, **extra})


def test_answers_with_citations(api: TestClient, tmp_path: Path) -> None:
    index(tmp_path)
    response = ask(api, "  Where must the zero moment point stay?  ", top_k=2)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"question", "answer", "answer_mode", "model", "passages"}
    assert body["question"] == "Where must the zero moment point stay?"
    assert body["answer_mode"] == "extractive"
    assert body["model"] == "sentence-transformers/all-MiniLM-L6-v2@onnx-int8"
    assert len(body["passages"]) == 2
    top = body["passages"][0]
    assert set(top) == {"title", "url", "breadcrumb", "score", "text"}
    assert top["url"] == "/docs/locomotion#zero-moment-point"
    assert top["breadcrumb"] == "Locomotion › Zero moment point"
    assert "support polygon" in body["answer"] and "[1]" in body["answer"]
    assert ask(api, "What is a ROS 2 node?").json()["passages"][0]["title"] == "ROS 2 nodes"


@pytest.mark.parametrize("payload", [
    {"question": ""}, {"question": "   \n"}, {"question": "x" * 1001}, {"question": 42},
    {}, {"question": "ok?", "top_k": 0}, {"question": "ok?", "top_k": 21},
])
def test_bad_questions_are_422(api: TestClient, payload: dict[str, Any]) -> None:
    assert api.post("/api/v1/query", json=payload).status_code == 422


def test_no_index_is_503_naming_the_cause(api: TestClient) -> None:
    response = ask(api, "What is a node?")
    assert response.status_code == 503
    detail = "no index: collection 'textbook' does not exist: run the indexer first"
    assert response.json() == {"detail": detail + " (run populate-embeddings)"}


def test_an_index_of_another_model_is_503(api: TestClient) -> None:
    settings = Settings()
    with retrieval.open_writer_store(settings) as client:
        ensure_collection(client, "textbook", "cohere/embed-english-v3.0", 1024)
    response = ask(api, "What is a node?")
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert detail.startswith("the index was built with another model:")
    assert "'cohere/embed-english-v3.0'" in detail


def test_a_store_being_indexed_is_503_with_retry_after(api: TestClient, tmp_path: Path) -> None:
    settings = index(tmp_path)
    with retrieval.open_writer_store(settings):
        response = ask(api, "What is a node?")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(retrieval.BUSY_RETRY_AFTER)
    assert "being indexed" in response.json()["detail"]
    assert ask(api, "What is a node?").status_code == 200


def test_the_lease_lingers_then_yields_to_the_indexer(
    api: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = index(tmp_path)
    assert ask(api, "What is a node?").status_code == 200
    assert retrieval.reader_is_open(settings)  # kept for the next query of a burst
    with retrieval.open_writer_store(settings, wait=0):  # the writer takes it over at once
        assert not retrieval.reader_is_open(settings)

    monkeypatch.setenv("QDRANT_LOCAL_LINGER", "0")
    from textbook_api.config import get_settings

    get_settings.cache_clear()
    assert ask(api, "What is a node?").status_code == 200
    assert not retrieval.reader_is_open(Settings())  # linger 0: closed after each query


@pytest.fixture
def chat(
    fake_cohere: FakeCohere, monkeypatch: pytest.MonkeyPatch, settings_env: dict[str, str]
) -> FakeCohere:
    fake_cohere.reply = "It stays in the support polygon [1]."
    monkeypatch.setenv("COHERE_API_KEY", KEY)
    monkeypatch.setenv("COHERE_BASE_URL", fake_cohere.url)
    monkeypatch.setenv("COHERE_MAX_RETRIES", "0")
    from textbook_api.config import get_settings

    get_settings.cache_clear()
    return fake_cohere


def test_a_cohere_key_gives_generative_answers_and_failures_fall_back(
    chat: FakeCohere, api: TestClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    index(tmp_path)
    body = ask(api, "Where must the zero moment point stay?").json()
    assert body["answer_mode"] == "generative"
    assert body["answer"] == "It stays in the support polygon [1]."
    assert body["model"] == "cohere/command-r-08-2024"
    assert body["passages"]

    chat.status = 500
    with caplog.at_level(logging.WARNING):
        response = ask(api, "Where must the zero moment point stay?")
    body = response.json()
    assert response.status_code == 200
    assert body["answer_mode"] == "extractive"
    assert "[1]" in body["answer"]
    assert "Cohere chat failed" in caplog.text and "HTTP 500" in caplog.text
    assert KEY not in caplog.text + response.text
