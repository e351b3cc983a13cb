"""Cohere embedder/chat against a local HTTP server standing in for api.cohere.com."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

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


@dataclass
class FakeCohere:
    url: str
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)


@pytest.fixture
def cohere() -> Iterator[FakeCohere]:
    state = FakeCohere(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append({"path": self.path, "body": body,
                                   "auth": self.headers.get("Authorization")})
            state.times.append(time.monotonic())
            status, headers = state.script.pop(0) if state.script else (200, {})
            if status == 200 and self.path == "/v1/embed":
                payload: dict[str, Any] = {"embeddings": {"float": [
                    [float(len(t) % 7 + i) for i in range(DIM)] for t in body["texts"]]}}
            elif status == 200:
                payload = {"message": {"content": [{"type": "text", "text": "Balance [1]."}]}}
            else:  # echo the credentials back, as a careless server might
                payload = {"message": f"error for {self.headers.get('Authorization')}"}
            data = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def make(url: str, **kwargs: Any) -> CohereEmbedder:
    options: dict[str, Any] = {"dimension": DIM, "base_url": url, "backoff_base": 0.01,
                               "max_retries": 3}
    options.update(kwargs)
    return CohereEmbedder(KEY, **options)


def assert_no_key(exc: BaseException) -> None:
    assert KEY not in str(exc) and KEY not in repr(exc)
    assert all(KEY not in str(a) for a in exc.args)


def test_batches_of_96_and_input_types(cohere: FakeCohere) -> None:
    emb = make(cohere.url)
    vectors = emb.embed_documents([f"text {i}" for i in range(200)])
    assert len(vectors) == 200 and all(len(v) == DIM for v in vectors)
    assert [len(r["body"]["texts"]) for r in cohere.requests] == [96, 96, 8]
    assert {r["body"]["input_type"] for r in cohere.requests} == {"search_document"}
    assert cohere.requests[0]["body"]["embedding_types"] == ["float"]
    assert cohere.requests[0]["auth"] == f"Bearer {KEY}"
    emb.embed_query("q")
    assert cohere.requests[-1]["body"]["input_type"] == "search_query"
    assert emb.model_id == "cohere/embed-english-v3.0" and emb.dimension == DIM
    assert KEY not in repr(emb)


def test_429_retry_honours_retry_after(cohere: FakeCohere) -> None:
    cohere.script = [(429, {"Retry-After": "1"})]
    started = time.monotonic()
    assert len(make(cohere.url).embed_query("q")) == DIM
    assert len(cohere.requests) == 2
    assert cohere.times[1] - cohere.times[0] >= 1.0, "waited the Retry-After seconds"
    assert time.monotonic() - started < 5


def test_429_exhausted_raises_rate_limit_error(cohere: FakeCohere) -> None:
    cohere.script = [(429, {"Retry-After": "0"})] * 3
    with pytest.raises(EmbedderRateLimitError) as info:
        make(cohere.url, max_retries=2).embed_query("q")
    assert len(cohere.requests) == 3
    assert info.value.retry_after == 0
    assert_no_key(info.value)


def test_500_retried_then_succeeds_or_fails(cohere: FakeCohere) -> None:
    cohere.script = [(500, {}), (503, {})]
    assert len(make(cohere.url).embed_documents(["a"])) == 1
    assert len(cohere.requests) == 3
    cohere.script = [(500, {})] * 5
    with pytest.raises(EmbedderServerError) as info:
        make(cohere.url, max_retries=1).embed_documents(["a"])
    assert info.value.status_code == 500
    assert_no_key(info.value)


@pytest.mark.parametrize("status", [401, 403])
def test_auth_error_is_distinct_and_not_retried(cohere: FakeCohere, status: int) -> None:
    cohere.script = [(status, {})]
    with pytest.raises(EmbedderAuthError) as info:
        make(cohere.url).embed_query("q")
    assert len(cohere.requests) == 1
    assert info.value.status_code == status
    assert not isinstance(info.value, EmbedderConnectionError)
    assert_no_key(info.value)  # the server echoed the header back; it is scrubbed


def test_connection_refused_is_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    emb = make(f"http://127.0.0.1:{port}", max_retries=1)
    with pytest.raises(EmbedderConnectionError) as info:
        emb.embed_query("q")
    assert not isinstance(info.value, EmbedderAuthError)
    assert isinstance(info.value, EmbedderError)
    assert_no_key(info.value)
    assert info.value.__cause__ is None or KEY not in str(info.value.__cause__)


def test_chat_generative_answer_and_errors(cohere: FakeCohere) -> None:
    chat = CohereChat(KEY, base_url=cohere.url, backoff_base=0.01)
    passages = [Passage("Locomotion", "/docs/locomotion#zmp", "Locomotion › ZMP", 0.9,
                        "The zero moment point must stay in the support polygon.")]
    text, mode = answer("How do robots balance?", passages, chat)
    assert (text, mode) == ("Balance [1].", "generative")
    request = cohere.requests[-1]
    assert request["path"] == "/v2/chat"
    assert "support polygon" in json.dumps(request["body"]["messages"])
    cohere.script = [(401, {})]
    with pytest.raises(EmbedderAuthError) as info:
        answer("q", passages, chat)
    assert_no_key(info.value)
    assert KEY not in repr(chat)
