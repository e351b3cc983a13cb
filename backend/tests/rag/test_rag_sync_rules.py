"""The sync's rules pinned exactly, on real Qdrant local mode with the real packaged model.

test_rag_indexer.py follows a corpus through its life; these state what a small change to the
indexer would break unnoticed there: how each chunk is classified, what a stored point holds,
the mass-delete bound to the chunk, the batches and their progress reports, paging through a
store larger than one scroll page, and the errors and their messages.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from qdrant_client import QdrantClient, models

from conftest import write_docs
from textbook_api.rag.chunking import CHUNKER_VERSION, Chunk, load_corpus
from textbook_api.rag.embedders import LocalEmbedder
from textbook_api.rag.errors import MassDeleteError, RagError
from textbook_api.rag.indexer import (
    IndexProgress,
    IndexReport,
    plan_sync,
    stored_hashes,
    sync_index,
)
from textbook_api.rag.store import count_points, ensure_collection

COLL = "rules"


def sections(tmp_path: Path, count: int) -> list[Chunk]:
    """A one-file corpus of `count` short sections: one chunk each."""
    body = "".join(f"## Part {i}\n\nFact number {i} about balance.\n\n" for i in range(count))
    chunks = load_corpus(write_docs(tmp_path / "docs", {"book.md": body}))
    assert len(chunks) == count
    return chunks


def fingerprint(chunk: Chunk, model_id: str) -> str:
    return f"{chunk.content_hash}|{model_id}|{CHUNKER_VERSION}"


def test_each_chunk_is_classified_and_stale_ids_come_sorted(tmp_path: Path) -> None:
    kept, edited, new = sections(tmp_path, 3)
    stored = {
        "zz-stale": "h|m|v",
        kept.point_id: fingerprint(kept, "m"),
        edited.point_id: fingerprint(edited, "m").replace(edited.content_hash, "old"),
        "aa-stale": "h|m|v",
    }
    plan = plan_sync([kept, edited, new], stored, "m")
    assert (plan.added, plan.updated, plan.unchanged) == ((new,), (edited,), 1)
    assert (plan.stale, plan.existing) == (("aa-stale", "zz-stale"), 4)
    # another model: the same texts are embedded again
    other = plan_sync([kept, edited, new], stored, "other-model")
    assert (other.added, other.updated, other.unchanged) == ((new,), (kept, edited), 0)


def test_a_chunk_id_given_twice_is_refused(tmp_path: Path) -> None:
    first, second = sections(tmp_path, 2)
    with pytest.raises(RagError) as info:
        plan_sync([first, second, first], {}, "m")
    assert str(info.value) == f"duplicate chunk id {first.point_id} (book.md)"


def test_a_stored_point_holds_the_chunk_and_its_binding(
    tmp_path: Path, client: QdrantClient, embedder: LocalEmbedder
) -> None:
    chunks = sections(tmp_path, 2)
    sync_index(chunks, embedder, client, COLL)
    chunk = chunks[1]
    point = client.retrieve(COLL, ids=[chunk.point_id], with_vectors=True)[0]
    assert point.payload == {
        "source": "book.md", "doc_id": chunk.doc_id, "title": chunk.title,
        "heading_path": list(chunk.heading_path), "ordinal": chunk.ordinal,
        "breadcrumb": chunk.breadcrumb, "url": chunk.url, "text": chunk.text,
        "content_hash": chunk.content_hash, "model_id": embedder.model_id,
        "chunker_version": CHUNKER_VERSION,
    }
    assert isinstance(point.vector, list)
    assert point.vector == pytest.approx(embedder.embed_documents([chunk.embed_text])[0],
                                         abs=1e-5)
    metadata = client.get_collection(COLL).config.metadata or {}
    assert metadata["chunker_version"] == CHUNKER_VERSION
    assert stored_hashes(client, COLL) == {c.point_id: fingerprint(c, embedder.model_id)
                                           for c in chunks}


def test_stored_hashes_pages_through_more_than_one_scroll_page(client: QdrantClient) -> None:
    ensure_collection(client, "paged", "m", 2)
    ids = [str(uuid.UUID(int=i + 1)) for i in range(1100)]
    client.upsert("paged", wait=True, points=[
        models.PointStruct(id=pid, vector=[1.0, 0.5],
                           payload={"content_hash": f"h{n}", "model_id": "m",
                                    "chunker_version": "v"})
        for n, pid in enumerate(ids[:-1])])
    # a point written by something else: what it lacks reads as empty, never as a match
    client.upsert("paged", wait=True, points=[
        models.PointStruct(id=ids[-1], vector=[1.0, 0.5], payload={})])
    stored = stored_hashes(client, "paged")
    assert len(stored) == 1100
    assert stored[ids[0]] == "h0|m|v" and stored[ids[-2]] == "h1098|m|v"
    assert stored[ids[-1]] == "||"


def test_half_the_index_may_go_and_one_chunk_more_is_refused_before_any_write(
    tmp_path: Path, client: QdrantClient, embedder: LocalEmbedder
) -> None:
    chunks = sections(tmp_path, 8)
    sync_index(chunks, embedder, client, COLL)
    assert sync_index(chunks[:4], embedder, client, COLL).deleted == 4  # 4 of 8: the bound
    sync_index(chunks, embedder, client, COLL)
    with pytest.raises(MassDeleteError) as info:
        sync_index(chunks[:3], embedder, client, COLL)
    assert str(info.value) == ("refusing to delete 5 of 8 indexed chunks (more than 50%);"
                               " pass allow_mass_delete to confirm")
    assert (info.value.to_delete, info.value.existing) == (5, 8)
    with pytest.raises(MassDeleteError):  # also when only counting
        sync_index(chunks[:3], embedder, client, COLL, dry_run=True)
    assert count_points(client, COLL) == 8
    assert sync_index(chunks[:3], embedder, client, COLL, max_delete_fraction=0.625).deleted == 5


def test_batches_and_their_progress_reports(
    tmp_path: Path, client: QdrantClient, embedder: LocalEmbedder
) -> None:
    chunks = sections(tmp_path, 66)
    events: list[IndexProgress] = []
    report = sync_index(chunks, embedder, client, COLL, progress=events.append)
    assert events == [IndexProgress("upsert", 64, 66), IndexProgress("upsert", 66, 66)]
    assert (report.added, report.texts_embedded) == (66, 66)

    # 600 stale points of the same binding go in deletes of 512 ids
    client.upsert(COLL, wait=True, points=[
        models.PointStruct(id=str(uuid.UUID(int=i + 1)), vector=[0.1] * embedder.dimension,
                           payload={"content_hash": "x"})
        for i in range(600)])
    events.clear()
    report = sync_index(chunks, embedder, client, COLL, allow_mass_delete=True,
                        progress=events.append)
    assert events == [IndexProgress("delete", 512, 600), IndexProgress("delete", 600, 600)]
    assert (report.deleted, report.unchanged, report.texts_embedded) == (600, 66, 0)
    assert count_points(client, COLL) == 66


def test_the_report_counts_every_class_and_times_the_sync(
    tmp_path: Path, client: QdrantClient, embedder: LocalEmbedder
) -> None:
    chunks = sections(tmp_path, 6)
    sync_index(chunks[:5], embedder, client, COLL)
    edited = [chunks[0], *chunks[2:4],
              Chunk(**{**vars(chunks[4]), "text": "Changed.", "content_hash": "changed"}),
              chunks[5]]
    for dry_run in (True, False):
        started = time.perf_counter()
        report = sync_index(edited, embedder, client, COLL, dry_run=dry_run)
        elapsed = time.perf_counter() - started
        assert 0 <= report.seconds <= elapsed
        texts = 0 if dry_run else 2
        assert report == IndexReport(added=1, updated=1, unchanged=3, deleted=1,
                                     texts_embedded=texts, seconds=report.seconds,
                                     model_id=embedder.model_id, collection=COLL,
                                     dry_run=dry_run)
    assert report.as_dict()["dry_run"] is False


class OneShortEmbedder:
    """Another provider's embedder that answers one vector too few for each batch."""

    def __init__(self, inner: LocalEmbedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.max_tokens = inner.max_tokens

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)[1:]

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


def test_bad_arguments_and_a_short_answer_are_refused(
    tmp_path: Path, client: QdrantClient, embedder: LocalEmbedder
) -> None:
    chunks = sections(tmp_path, 2)
    with pytest.raises(ValueError, match=r"^batch_size must be >= 1$"):
        sync_index(chunks, embedder, client, COLL, batch_size=0)
    assert not client.collection_exists(COLL)
    with pytest.raises(RagError, match=r"^embedder returned a wrong number of vectors$"):
        sync_index(chunks, OneShortEmbedder(embedder), client, COLL)
    assert count_points(client, COLL) == 0
