"""Qdrant access: open a client, create or check a collection bound to one embedder.

Binding: a collection records the embedder it was built with in Qdrant's collection
``metadata`` (``{"model_id": ..., "dimension": ..., "chunker_version": ...}``, stored
at creation). Every point's payload also carries ``model_id``. Opening a collection with
an embedder of another model id or dimension raises :class:`IndexMismatchError`, so
vectors of two models are never mixed; to switch models, index into another collection
name (or drop this one).

Local mode (``path=``) locks its folder to one process: open the client for the duration
of one job (``with open_store(...) as client``) and close it, so the indexer and the API
can take turns. Server mode (``url=``) has no such limit.

``qdrant_client`` is imported when a store is first opened, not with this module: it costs
~0.7 s of start-up (its models are built at import), which a command that never opens a
store (`--help`, an indexing run with nothing to do) need not pay.
"""

from __future__ import annotations

import fcntl
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import IndexMismatchError, StoreError

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

logger = logging.getLogger(__name__)

#: Payload fields stored with every point.
PAYLOAD_FIELDS = ("source", "doc_id", "title", "heading_path", "ordinal", "breadcrumb",
                  "url", "text", "content_hash", "model_id", "chunker_version")


def _held_by_another_client(folder: Path) -> bool:
    """Whether a local client holds `folder`'s lock (qdrant_client flocks `.lock` there).

    Asked before opening: qdrant_client opens every collection's SQLite file first and only then
    finds the folder taken, leaving those connections open until garbage collection, one set per
    attempt of a caller that waits for the folder.
    """
    lock = folder / ".lock"
    if not lock.exists():
        return False
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def open_client(
    path: Path | str | None = None,
    *,
    url: str | None = None,
    api_key: str | None = None,
    timeout: int = 30,
) -> QdrantClient:
    """A Qdrant client: server mode when ``url`` is given, else local mode in ``path``.

    ``path=":memory:"`` gives an in-process store (tests, benchmarks).
    """
    from qdrant_client import QdrantClient
    if url:
        return QdrantClient(url=url, api_key=api_key or None, timeout=timeout)
    if path is None:
        raise StoreError("give either a local store path or a Qdrant url")
    if str(path) == ":memory:":
        return QdrantClient(location=":memory:")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    if _held_by_another_client(folder):
        raise StoreError(f"local vector store {folder} is in use by another process")
    try:
        return QdrantClient(path=str(folder))
    except RuntimeError as exc:  # portalocker: "already accessed by another instance"
        raise StoreError(f"local vector store {folder} is in use by another process: "
                         f"{exc}") from None


@contextmanager
def open_store(
    path: Path | str | None = None,
    *,
    url: str | None = None,
    api_key: str | None = None,
    timeout: int = 30,
) -> Iterator[QdrantClient]:
    """Context manager around :func:`open_client` that always closes the client."""
    client = open_client(path, url=url, api_key=api_key, timeout=timeout)
    try:
        yield client
    finally:
        client.close()


def collection_binding(client: QdrantClient, collection: str) -> dict[str, Any] | None:
    """``{"model_id", "dimension"}`` the collection was built with; ``None`` if absent."""
    from qdrant_client import models
    if not client.collection_exists(collection):
        return None
    info = client.get_collection(collection)
    vectors = info.config.params.vectors
    size = vectors.size if isinstance(vectors, models.VectorParams) else None
    metadata = dict(info.config.metadata or {})
    model_id = metadata.get("model_id")
    if model_id is None:  # server without collection metadata: read one point's payload
        points, _ = client.scroll(collection, limit=1, with_payload=["model_id"],
                                  with_vectors=False)
        if points and points[0].payload:
            model_id = points[0].payload.get("model_id")
    return {"model_id": model_id, "dimension": size if size is not None
            else metadata.get("dimension")}


def check_collection(client: QdrantClient, collection: str, model_id: str,
                     dimension: int) -> bool:
    """Raise :class:`IndexMismatchError` if ``collection`` belongs to another embedder.

    Return ``False`` when the collection does not exist, ``True`` when it matches.
    """
    binding = collection_binding(client, collection)
    if binding is None:
        return False
    if binding["dimension"] != dimension or (
            binding["model_id"] is not None and binding["model_id"] != model_id):
        raise IndexMismatchError(
            f"collection '{collection}' was built with model {binding['model_id']!r} "
            f"(dimension {binding['dimension']}), not {model_id!r} (dimension {dimension}); "
            "index into another collection or drop this one")
    return True


def ensure_collection(client: QdrantClient, collection: str, model_id: str,
                      dimension: int, *, chunker_version: str | None = None) -> bool:
    """Create ``collection`` for this embedder if missing; check it otherwise.

    Return ``True`` when it was created.
    """
    from qdrant_client import models
    if check_collection(client, collection, model_id, dimension):
        return False
    metadata: dict[str, Any] = {"model_id": model_id, "dimension": dimension}
    if chunker_version is not None:
        metadata["chunker_version"] = chunker_version
    client.create_collection(
        collection,
        vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
        metadata=metadata,
    )
    try:  # payload index for per-file lookups; local mode accepts and ignores it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client.create_payload_index(collection, "source",
                                        field_schema=models.PayloadSchemaType.KEYWORD)
    except Exception as error:  # noqa: BLE001 - an index is an optimisation, never a requirement
        logger.debug("payload index on 'source' not created: %s", error)
    return True


def require_collection(client: QdrantClient, collection: str, model_id: str,
                       dimension: int) -> None:
    """For readers (the API): the collection must exist and match the embedder."""
    if not check_collection(client, collection, model_id, dimension):
        raise StoreError(f"collection '{collection}' does not exist: run the indexer first")


def count_points(client: QdrantClient, collection: str) -> int:
    if not client.collection_exists(collection):
        return 0
    return int(client.count(collection, exact=True).count)
