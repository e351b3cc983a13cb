"""Incremental, crash-safe synchronisation of chunks into a Qdrant collection.

The record of what is indexed is the points' own payloads (``content_hash``,
``model_id``, ``chunker_version``, ``source``...), so there is no second record that could
drift from the store. A sync:

1. reads what is stored (ids + hashes, no vectors);
2. classifies the desired chunks: unchanged (same id and hash: not embedded), updated (same
   id, other hash), added (new id); stored ids not desired are stale;
3. refuses with :class:`MassDeleteError`, before writing anything, when the stale points
   exceed ``max_delete_fraction`` of the stored ones (unless ``allow_mass_delete``);
4. embeds and upserts added/updated chunks batch by batch (``wait=True``);
5. only then deletes the stale points.

Point ids are deterministic (uuid5 of source, heading path and ordinal), so an upsert
after a crash overwrites instead of duplicating: a sync killed at any moment (even
``kill -9``) and run again converges to points == chunks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from .chunking import CHUNKER_VERSION, Chunk
from .embedders import Embedder
from .errors import MassDeleteError, RagError
from .store import check_collection, ensure_collection

if TYPE_CHECKING:  # imported when a store is opened (see store.py)
    from qdrant_client import QdrantClient

DEFAULT_BATCH_SIZE = 64
_SCROLL_PAGE = 1024
_DELETE_BATCH = 512


@dataclass(frozen=True)
class IndexProgress:
    """Reported after each batch: ``phase`` is ``"upsert"`` or ``"delete"``."""

    phase: Literal["upsert", "delete"]
    done: int
    total: int


ProgressCallback = Callable[[IndexProgress], None]


@dataclass(frozen=True)
class IndexReport:
    added: int
    updated: int
    unchanged: int
    deleted: int
    texts_embedded: int
    seconds: float
    model_id: str
    collection: str
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SyncPlan:
    """What a sync would do: ids to embed (added, updated) and stale ids to delete."""

    added: tuple[Chunk, ...]
    updated: tuple[Chunk, ...]
    unchanged: int
    stale: tuple[str, ...]
    existing: int


def stored_hashes(client: QdrantClient, collection: str) -> dict[str, str]:
    """``{point_id: content_hash}`` of every stored point (model/chunker mixed in)."""
    result: dict[str, str] = {}
    offset: Any = None
    while True:
        points, offset = client.scroll(
            collection, limit=_SCROLL_PAGE, offset=offset, with_vectors=False,
            with_payload=["content_hash", "model_id", "chunker_version"])
        for point in points:
            payload = point.payload or {}
            result[str(point.id)] = "|".join(str(payload.get(k, "")) for k in
                                             ("content_hash", "model_id", "chunker_version"))
        if offset is None:
            return result


def _fingerprint(chunk: Chunk, model_id: str) -> str:
    return f"{chunk.content_hash}|{model_id}|{CHUNKER_VERSION}"


def plan_sync(chunks: Sequence[Chunk], stored: dict[str, str], model_id: str) -> SyncPlan:
    added: list[Chunk] = []
    updated: list[Chunk] = []
    unchanged = 0
    desired: set[str] = set()
    for chunk in chunks:
        if chunk.point_id in desired:
            raise RagError(f"duplicate chunk id {chunk.point_id} ({chunk.source})")
        desired.add(chunk.point_id)
        current = stored.get(chunk.point_id)
        if current is None:
            added.append(chunk)
        elif current != _fingerprint(chunk, model_id):
            updated.append(chunk)
        else:
            unchanged += 1
    stale = tuple(sorted(pid for pid in stored if pid not in desired))
    return SyncPlan(tuple(added), tuple(updated), unchanged, stale, len(stored))


def chunk_payload(chunk: Chunk, model_id: str) -> dict[str, Any]:
    return {
        "source": chunk.source, "doc_id": chunk.doc_id, "title": chunk.title,
        "heading_path": list(chunk.heading_path), "ordinal": chunk.ordinal,
        "breadcrumb": chunk.breadcrumb, "url": chunk.url, "text": chunk.text,
        "content_hash": chunk.content_hash, "model_id": model_id,
        "chunker_version": CHUNKER_VERSION,
    }


def sync_index(
    chunks: Sequence[Chunk],
    embedder: Embedder,
    client: QdrantClient,
    collection: str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_delete_fraction: float = 0.5,
    allow_mass_delete: bool = False,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
) -> IndexReport:
    """Make ``collection`` hold exactly ``chunks``, embedding only what changed.

    Raise :class:`IndexMismatchError` if the collection belongs to another embedder and
    :class:`MassDeleteError` (nothing written) if more than ``max_delete_fraction`` of the
    stored points would be deleted and ``allow_mass_delete`` is false. With ``dry_run``
    the counts are computed and nothing is created, embedded or written.
    """
    from qdrant_client import models

    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    started = time.perf_counter()
    model_id = embedder.model_id
    if dry_run:
        exists = check_collection(client, collection, model_id, embedder.dimension)
    else:
        ensure_collection(client, collection, model_id, embedder.dimension,
                          chunker_version=CHUNKER_VERSION)
        exists = True
    stored = stored_hashes(client, collection) if exists else {}
    plan = plan_sync(chunks, stored, model_id)

    if plan.stale and not allow_mass_delete and plan.existing and \
            len(plan.stale) > max_delete_fraction * plan.existing:
        raise MassDeleteError(
            f"refusing to delete {len(plan.stale)} of {plan.existing} indexed chunks "
            f"(more than {max_delete_fraction:.0%}); pass allow_mass_delete to confirm",
            to_delete=len(plan.stale), existing=plan.existing)

    to_embed = [*plan.added, *plan.updated]
    if dry_run:
        return IndexReport(len(plan.added), len(plan.updated), plan.unchanged,
                           len(plan.stale), 0, time.perf_counter() - started, model_id,
                           collection, dry_run=True)

    embedded = 0
    for start in range(0, len(to_embed), batch_size):
        batch = to_embed[start:start + batch_size]
        vectors = embedder.embed_documents([c.embed_text for c in batch])
        if len(vectors) != len(batch):
            raise RagError("embedder returned a wrong number of vectors")
        client.upsert(collection, wait=True, points=[
            models.PointStruct(id=c.point_id, vector=v, payload=chunk_payload(c, model_id))
            for c, v in zip(batch, vectors)])
        embedded += len(batch)
        if progress is not None:
            progress(IndexProgress("upsert", embedded, len(to_embed)))

    # Stale points go only once every new point is written: a crash before this line
    # leaves a superset of the desired index (still answerable), never a hole.
    deleted = 0
    for start in range(0, len(plan.stale), _DELETE_BATCH):
        ids: list[models.ExtendedPointId] = list(plan.stale[start:start + _DELETE_BATCH])
        client.delete(collection, points_selector=models.PointIdsList(points=ids), wait=True)
        deleted += len(ids)
        if progress is not None:
            progress(IndexProgress("delete", deleted, len(plan.stale)))

    return IndexReport(len(plan.added), len(plan.updated), plan.unchanged, deleted,
                       embedded, time.perf_counter() - started, model_id, collection)
