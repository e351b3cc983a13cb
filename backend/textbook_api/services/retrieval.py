"""Retrieval from Settings: the one place that builds the embedder and opens the vector store.

Both the `populate-embeddings` operation (writer) and the query API (reader) come through here,
so they cannot disagree on which model embeds, which store and which collection they use.

Store handles (local mode locks its folder to one process, portalocker on `<path>/.lock`):

* writer: :func:`open_writer_store` opens the store exclusively for one run and closes it. If
  the folder is held (by the API, briefly, or another process) it retries until `wait` seconds
  have passed, then raises :class:`StoreBusyError`.
* readers (the API): :func:`reader_store` leases one shared handle per store. Concurrent
  requests share it (a second local client in the same process would hit the lock too); when
  the last request ends the handle lingers `QDRANT_LOCAL_LINGER` seconds (default 2), then
  closes, so an indexer waits at most that long for the folder. While an indexer holds the
  folder, queries answer 503 with `Retry-After`. Server mode (`QDRANT_URL`) has no lock: its
  client is opened once and kept.

  Measured on this machine (2 cores): opening a local store costs ~20-35 ms for the textbook
  (115 chunks) and ~0.55-0.75 s for 10,000 points (local mode loads every point into memory),
  closing ~0.3 ms; a search is ~10-20 ms. Opening per request would double a textbook query
  and make a 10k-point one 30x slower; a handle held forever would lock the indexer out. The
  lingering lease pays the open once per burst of queries and frees the folder 2 s after.
  A fresh open also picks up what the indexer wrote (a local client reads the folder once).

The embedder (the local model loads in ~0.5 s) and the Cohere chat client are built once per
configuration and cached for the life of the process. No error or log line here carries a key.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import SecretStr

from textbook_api.config import Settings
from textbook_api.rag.embedders import CohereChat, CohereEmbedder, Embedder, LocalEmbedder
from textbook_api.rag.errors import EmbedderError, IndexMismatchError, StoreError
from textbook_api.rag.search import Passage, answer, search
from textbook_api.rag.store import open_client
from textbook_api.redaction import Redactor, mask_url_password

if TYPE_CHECKING:  # imported when a store is opened (see rag/store.py)
    from qdrant_client import QdrantClient

logger = logging.getLogger(__name__)

#: Questions longer than this (characters, after stripping) are refused with 422.
MAX_QUESTION_CHARS = 1000
MAX_TOP_K = 20
#: Seconds a client is told to wait (`Retry-After`) while an indexer holds the local store.
BUSY_RETRY_AFTER = 5
_OPEN_POLL_SECONDS = 0.2


class StoreBusyError(StoreError):
    """The local vector store folder is held by another process (or a lease in this one)."""


class RetrievalUnavailable(Exception):
    """The query cannot be answered now; `detail` names the cause (HTTP 503)."""

    def __init__(self, detail: str, retry_after: int | None = None) -> None:
        self.detail = detail
        self.retry_after = retry_after
        super().__init__(detail)


# --------------------------------------------------------------------------- embedders


@dataclass(frozen=True)
class EmbedderSpec:
    """Everything that picks and configures an embedder (hashable: the cache key)."""

    kind: Literal["local", "cohere"]
    model: str
    dimension: int
    api_key: SecretStr | None
    base_url: str | None
    max_retries: int
    timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbedderSpec:
        return cls(settings.embedder, settings.cohere_embed_model,
                   settings.cohere_embed_dimension, settings.cohere_api_key,
                   settings.cohere_base_url, settings.cohere_max_retries, settings.cohere_timeout)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


@lru_cache(maxsize=4)
def _build_embedder(spec: EmbedderSpec) -> Embedder:
    if spec.kind == "local":
        return LocalEmbedder()
    key = _secret(spec.api_key)
    if not key:
        raise EmbedderError("EMBEDDER=cohere needs COHERE_API_KEY")
    return CohereEmbedder(key, spec.model, spec.dimension, base_url=spec.base_url,
                          max_retries=spec.max_retries, timeout=spec.timeout)


def get_embedder(settings: Settings) -> Embedder:
    """The configured embedder, built once per configuration (the local model loads once)."""
    return _build_embedder(EmbedderSpec.from_settings(settings))


def describe_embedder(settings: Settings) -> str:
    """A one-line description for plans and logs (never the key)."""
    if settings.embedder == "local":
        return "the packaged offline all-MiniLM-L6-v2 (int8 ONNX, 384-d)"
    where = settings.cohere_base_url or "api.cohere.com"
    return (f"Cohere {settings.cohere_embed_model} ({settings.cohere_embed_dimension}-d)"
            f" at {where}, key from COHERE_API_KEY")


@lru_cache(maxsize=4)
def _build_chat(api_key: SecretStr, model: str, base_url: str | None, max_retries: int,
                timeout: float) -> CohereChat:
    return CohereChat(api_key.get_secret_value(), model, base_url=base_url,
                      max_retries=max_retries, timeout=timeout)


def get_chat(settings: Settings) -> CohereChat | None:
    """Cohere chat when `COHERE_API_KEY` is set (generative answers), else None."""
    if settings.cohere_api_key is None or not _secret(settings.cohere_api_key):
        return None
    return _build_chat(settings.cohere_api_key, settings.cohere_chat_model,
                       settings.cohere_base_url, settings.cohere_max_retries,
                       settings.cohere_timeout)


# --------------------------------------------------------------------------- stores


def store_location(settings: Settings) -> str:
    """Where the vectors live, for plans and messages (never the API key or a password)."""
    if settings.qdrant_url:
        return f"Qdrant server {mask_url_password(settings.qdrant_url)}"
    return f"Qdrant local store {settings.qdrant_local_path.resolve()}"


def _local_key(settings: Settings) -> str:
    return str(settings.qdrant_local_path.resolve())


def _open_local(path: str) -> QdrantClient:
    try:
        return open_client(path)
    except StoreError as error:  # the only StoreError of a local open: the folder is locked
        raise StoreBusyError(f"local vector store {path} is in use by another process") \
            from error


@dataclass
class _Handle:
    client: QdrantClient
    users: int = 0
    timer: threading.Timer | None = field(default=None, repr=False)


class _ReaderHandles:
    """Shared, reference-counted store handles that close `linger` seconds after last use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handles: dict[str, _Handle] = {}

    @contextmanager
    def lease(self, key: str, open_store: Callable[[], QdrantClient],
              linger: float | None) -> Iterator[QdrantClient]:
        """`linger=None` keeps the handle for the life of the process (server mode)."""
        with self._lock:
            handle = self._handles.get(key)
            if handle is None:
                handle = self._handles[key] = _Handle(open_store())
            if handle.timer is not None:
                handle.timer.cancel()
                handle.timer = None
            handle.users += 1
        try:
            yield handle.client
        finally:
            with self._lock:
                handle.users -= 1
                if handle.users == 0 and linger is not None:
                    if linger <= 0:
                        self._close(key, handle)
                    else:
                        handle.timer = threading.Timer(linger, self._expire, (key, handle))
                        handle.timer.daemon = True
                        handle.timer.start()

    def _expire(self, key: str, handle: _Handle) -> None:
        with self._lock:
            if handle.users == 0 and self._handles.get(key) is handle:
                self._close(key, handle)

    def _close(self, key: str, handle: _Handle) -> None:
        if handle.timer is not None:
            handle.timer.cancel()
        del self._handles[key]
        handle.client.close()

    def release_idle(self, key: str | None = None) -> None:
        """Close idle handles now (all, or the one of `key`); leased ones stay open."""
        with self._lock:
            for name, handle in list(self._handles.items()):
                if (key is None or name == key) and handle.users == 0:
                    self._close(name, handle)

    def is_open(self, key: str) -> bool:
        with self._lock:
            return key in self._handles


_READERS = _ReaderHandles()


def release_readers() -> None:
    """Close every idle reader handle (application shutdown, tests)."""
    _READERS.release_idle()


def reader_is_open(settings: Settings) -> bool:
    return _READERS.is_open(settings.qdrant_url or _local_key(settings))


@contextmanager
def reader_store(settings: Settings) -> Iterator[QdrantClient]:
    """A read handle for one query (see the module docstring for the lease strategy)."""
    if settings.qdrant_url:
        url, key = settings.qdrant_url, _secret(settings.qdrant_api_key)
        with _READERS.lease(url, lambda: open_client(url=url, api_key=key), None) as client:
            yield client
        return
    path = _local_key(settings)
    with _READERS.lease(path, lambda: _open_local(path), settings.qdrant_local_linger) as client:
        yield client


@contextmanager
def open_writer_store(settings: Settings, *, wait: float = 0.0) -> Iterator[QdrantClient]:
    """The store opened for one indexing run, closed after it.

    In local mode, wait up to `wait` seconds for the folder (an API lease frees it within
    `QDRANT_LOCAL_LINGER` seconds), then raise :class:`StoreBusyError`.
    """
    if settings.qdrant_url:
        client = open_client(url=settings.qdrant_url, api_key=_secret(settings.qdrant_api_key))
    else:
        path = _local_key(settings)
        deadline = time.monotonic() + wait
        while True:
            _READERS.release_idle(path)  # a lingering lease of this very process
            try:
                client = _open_local(path)
                break
            except StoreBusyError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(_OPEN_POLL_SECONDS)
    try:
        yield client
    finally:
        client.close()


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class QueryResult:
    question: str
    answer: str
    answer_mode: Literal["extractive", "generative"]
    model: str
    passages: list[Passage]


def _scrub(text: str, settings: Settings) -> str:
    return Redactor.from_settings(settings)(text)


def retrieve(settings: Settings, question: str, top_k: int) -> tuple[Embedder, list[Passage]]:
    """The `top_k` passages for `question`; :class:`RetrievalUnavailable` names why not."""
    try:
        embedder = get_embedder(settings)
        with reader_store(settings) as client:
            passages = search(client, settings.qdrant_collection, embedder, question, top_k)
    except StoreBusyError:
        raise RetrievalUnavailable(
            "the vector store is being indexed by another process; retry shortly",
            retry_after=BUSY_RETRY_AFTER) from None
    except IndexMismatchError as error:
        raise RetrievalUnavailable(f"the index was built with another model: {error}") \
            from None
    except StoreError as error:
        raise RetrievalUnavailable(
            f"no index: {error} (run populate-embeddings)") from None
    except EmbedderError as error:
        raise RetrievalUnavailable(
            _scrub(f"the embedder is unavailable: {error}", settings)) from None
    except Exception as error:  # a Qdrant server that is down raises transport errors
        logger.warning("vector store query failed: %s", _scrub(repr(error), settings))
        raise RetrievalUnavailable(
            f"the vector store is unreachable ({store_location(settings)})") from None
    return embedder, passages


def run_query(settings: Settings, question: str, top_k: int = 5) -> QueryResult:
    """Passages plus an answer: generative through Cohere chat when a key is set and it
    answers; extractive otherwise (a failed chat is logged and the label stays honest)."""
    embedder, passages = retrieve(settings, question, top_k)
    chat = get_chat(settings)
    if chat is not None and passages:
        try:
            text, mode = answer(question, passages, chat)
            return QueryResult(question, text, mode, f"cohere/{chat.model}", passages)
        except EmbedderError as error:
            logger.warning("Cohere chat failed, answering extractively: %s: %s",
                           type(error).__name__, _scrub(str(error), settings))
    text, mode = answer(question, passages, None)
    return QueryResult(question, text, mode, embedder.model_id, passages)


def local_store_exists(settings: Settings) -> bool:
    """Whether a local store was ever created (its folder holds Qdrant's meta.json)."""
    return (Path(_local_key(settings)) / "meta.json").is_file()
