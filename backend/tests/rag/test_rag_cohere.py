"""Cohere embedder/chat against a local HTTP server standing in for api.cohere.com."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from conftest import FakeCohere
from pipeline.local import free_port
from textbook_api.rag.embedders import CohereChat, CohereEmbedder
from textbook_api.rag.errors import (
    EmbedderAuthError,
    EmbedderConnectionError,
    EmbedderError,
    EmbedderRateLimitError,
    EmbedderServerError,
)
from textbook_api.rag.search import Passage, answer

KEY = "sk-test-SECRET-4242"
DIM = 8


def make(url: str, **kwargs: Any) -> CohereEmbedder:
    options: dict[str, Any] = {"dimension": DIM, "base_url": url, "backoff_base": 0.01,
                               "max_retries": 3}
    options.update(kwargs)
    return CohereEmbedder(KEY, **options)


def assert_no_key(exc: BaseException) -> None:
    assert KEY not in str(exc) and KEY not in repr(exc)
    assert all(KEY not in str(a) for a in exc.args)


def test_batches_of_96_and_input_types(fake_cohere: FakeCohere) -> None:
    emb = make(fake_cohere.url)
    vectors = emb.embed_documents([f"text {i}" for i in range(200)])
    assert len(vectors) == 200 and all(len(v) == DIM for v in vectors)
    assert [len(r["body"]["texts"]) for r in fake_cohere.requests] == [96, 96, 8]
    assert {r["body"]["input_type"] for r in fake_cohere.requests} == {"search_document"}
    assert fake_cohere.requests[0]["body"]["embedding_types"] == ["float"]
    assert fake_cohere.requests[0]["auth"] == f"Bearer {KEY}"
    emb.embed_query("q")
    assert fake_cohere.requests[-1]["body"]["input_type"] == "search_query"
    assert emb.model_id == "cohere/embed-english-v3.0" and emb.dimension == DIM
    assert KEY not in repr(emb)


def test_429_retry_honours_retry_after(fake_cohere: FakeCohere) -> None:
    fake_cohere.script = [(429, {"Retry-After": "1"})]
    started = time.monotonic()
    assert len(make(fake_cohere.url).embed_query("q")) == DIM
    assert len(fake_cohere.requests) == 2
    assert fake_cohere.times[1] - fake_cohere.times[0] >= 1.0, "waited the Retry-After seconds"
    assert time.monotonic() - started < 5


def test_429_exhausted_raises_rate_limit_error(fake_cohere: FakeCohere) -> None:
    fake_cohere.script = [(429, {"Retry-After": "0"})] * 3
    with pytest.raises(EmbedderRateLimitError) as info:
        make(fake_cohere.url, max_retries=2).embed_query("q")
    assert len(fake_cohere.requests) == 3
    assert info.value.retry_after == 0
    assert_no_key(info.value)


def test_500_retried_then_succeeds_or_fails(fake_cohere: FakeCohere) -> None:
    fake_cohere.script = [(500, {}), (503, {})]
    assert len(make(fake_cohere.url).embed_documents(["a"])) == 1
    assert len(fake_cohere.requests) == 3
    fake_cohere.script = [(500, {})] * 5
    with pytest.raises(EmbedderServerError) as info:
        make(fake_cohere.url, max_retries=1).embed_documents(["a"])
    assert info.value.status_code == 500
    assert_no_key(info.value)


@pytest.mark.parametrize("status", [401, 403])
def test_auth_error_is_distinct_and_not_retried(fake_cohere: FakeCohere, status: int) -> None:
    fake_cohere.script = [(status, {})]
    with pytest.raises(EmbedderAuthError) as info:
        make(fake_cohere.url).embed_query("q")
    assert len(fake_cohere.requests) == 1
    assert info.value.status_code == status
    assert not isinstance(info.value, EmbedderConnectionError)
    assert_no_key(info.value)  # the server echoed the header back; it is scrubbed


def test_connection_refused_is_a_connection_error() -> None:
    emb = make(f"http://127.0.0.1:{free_port()}", max_retries=1)
    with pytest.raises(EmbedderConnectionError) as info:
        emb.embed_query("q")
    assert not isinstance(info.value, EmbedderAuthError)
    assert isinstance(info.value, EmbedderError)
    assert_no_key(info.value)
    assert info.value.__cause__ is None or KEY not in str(info.value.__cause__)


def test_chat_generative_answer_and_errors(fake_cohere: FakeCohere) -> None:
    chat = CohereChat(KEY, base_url=fake_cohere.url, backoff_base=0.01)
    passages = [Passage("Locomotion", "/docs/locomotion#zmp", "Locomotion › ZMP", 0.9,
                        "The zero moment point must stay in the support polygon.")]
    text, mode = answer("How do robots balance?", passages, chat)
    assert (text, mode) == ("Balance [1].", "generative")
    request = fake_cohere.requests[-1]
    assert request["path"] == "/v2/chat"
    assert "support polygon" in json.dumps(request["body"]["messages"])
    fake_cohere.script = [(401, {})]
    with pytest.raises(EmbedderAuthError) as info:
        answer("q", passages, chat)
    assert_no_key(info.value)
    assert KEY not in repr(chat)
