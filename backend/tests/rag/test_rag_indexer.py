"""Incremental sync against real Qdrant local mode with the real packaged model."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from conftest import write_docs
from textbook_api.rag.chunking import load_corpus
from textbook_api.rag.embedders import CohereEmbedder, LocalEmbedder
from textbook_api.rag.errors import IndexMismatchError, MassDeleteError, StoreError
from textbook_api.rag.indexer import IndexProgress, stored_hashes, sync_index
from textbook_api.rag.search import search
from textbook_api.rag.store import (
    collection_binding,
    count_points,
    ensure_collection,
    open_client,
    open_store,
)

from .conftest import BOOK

COLL = "book"


def test_full_then_noop_then_one_change_then_removal(
        tmp_path: Path, client: QdrantClient, embedder: LocalEmbedder) -> None:
    docs = write_docs(tmp_path / "docs", BOOK)
    chunks = load_corpus(docs, count_tokens=embedder.count_tokens)
    events: list[IndexProgress] = []
    first = sync_index(chunks, embedder, client, COLL, batch_size=4, progress=events.append)
    assert (first.added, first.updated, first.unchanged, first.deleted) == (len(chunks), 0, 0, 0)
    assert first.texts_embedded == len(chunks) == count_points(client, COLL)
    assert first.model_id == embedder.model_id and first.collection == COLL
    assert [e.done for e in events] == list(range(4, len(chunks), 4)) + [len(chunks)]

    again = sync_index(chunks, embedder, client, COLL, batch_size=4)
    assert (again.texts_embedded, again.unchanged, again.added, again.deleted) == \
        (0, len(chunks), 0, 0)

    # change one section of one file: only that section's chunk is re-embedded
    text = (docs / "locomotion.md").read_text()
    (docs / "locomotion.md").write_text(text.replace("to come to a complete stop",
                                                     "to stop without falling over"))
    changed = load_corpus(docs, count_tokens=embedder.count_tokens)
    before = {c.point_id: c.content_hash for c in chunks}
    expected = [c for c in changed if before.get(c.point_id) != c.content_hash]
    assert [c.heading_path[-1] for c in expected] == ["Capture point"]
    report = sync_index(changed, embedder, client, COLL, batch_size=4)
    assert (report.updated, report.added, report.deleted, report.texts_embedded) == \
        (1, 0, 0, 1)
    hit = search(client, COLL, embedder, "where to step to stop without falling", top_k=1)[0]
    assert "without falling over" in hit.text

    # remove a file: its chunks are deleted, nothing is embedded
    removed = [c for c in changed if c.source == "grasping.md"]
    (docs / "grasping.md").unlink()
    final = load_corpus(docs, count_tokens=embedder.count_tokens)
    report = sync_index(final, embedder, client, COLL, batch_size=4)
    assert (report.deleted, report.texts_embedded) == (len(removed), 0)
    assert set(stored_hashes(client, COLL)) == {c.point_id for c in final}


def test_dry_run_counts_and_writes_nothing(
        tmp_path: Path, client: QdrantClient, embedder: LocalEmbedder) -> None:
    chunks = load_corpus(write_docs(tmp_path / "docs", BOOK))
    report = sync_index(chunks, embedder, client, COLL, dry_run=True)
    assert report.dry_run and report.added == len(chunks) and report.texts_embedded == 0
    assert not client.collection_exists(COLL)
    sync_index(chunks[:-2], embedder, client, COLL)
    report = sync_index(chunks[2:], embedder, client, COLL, dry_run=True)
    assert (report.added, report.deleted, report.unchanged) == (2, 2, len(chunks) - 4)
    assert set(stored_hashes(client, COLL)) == {c.point_id for c in chunks[:-2]}


def test_stale_points_deleted_only_after_all_writes(
        tmp_path: Path, client: QdrantClient, embedder: LocalEmbedder) -> None:
    docs = write_docs(tmp_path / "docs", BOOK)
    old = load_corpus(docs)
    sync_index(old, embedder, client, COLL)
    (docs / "intro.md").unlink()
    write_docs(docs, {"new.md": "# New chapter\n\n## One\n\nFirst.\n\n## Two\n\nSecond.\n"})
    new = load_corpus(docs)
    stale = [c.point_id for c in old if c.source == "intro.md"]
    seen: list[tuple[str, int]] = []

    def progress(event: IndexProgress) -> None:
        present = len(client.retrieve(COLL, ids=stale))
        seen.append((event.phase, present))

    report = sync_index(new, embedder, client, COLL, batch_size=1, progress=progress)
    upserts = [p for phase, p in seen if phase == "upsert"]
    assert len(upserts) == report.texts_embedded == 2
    assert upserts == [len(stale)] * 2, "stale points survive every write"
    assert seen[-1] == ("delete", 0) and [s[0] for s in seen].index("delete") == 2
    assert client.retrieve(COLL, ids=stale) == []


def test_mass_delete_guard_and_override(
        tmp_path: Path, client: QdrantClient, embedder: LocalEmbedder) -> None:
    docs = write_docs(tmp_path / "docs", BOOK)
    chunks = load_corpus(docs)
    sync_index(chunks, embedder, client, COLL)
    for name in ("intro.md", "locomotion.md", "grasping.md"):
        (docs / name).unlink()
    write_docs(docs, {"extra.md": "# Extra\n\nSomething new.\n"})
    remaining = load_corpus(docs)
    with pytest.raises(MassDeleteError) as info:
        sync_index(remaining, embedder, client, COLL)
    assert info.value.existing == len(chunks) and info.value.to_delete > len(chunks) / 2
    # refused before writing anything: the new doc was not added either
    assert set(stored_hashes(client, COLL)) == {c.point_id for c in chunks}
    assert sync_index(remaining, embedder, client, COLL, max_delete_fraction=0.9).deleted
    sync_index(chunks, embedder, client, COLL, allow_mass_delete=True)
    report = sync_index(remaining, embedder, client, COLL, allow_mass_delete=True)
    assert report.deleted == info.value.to_delete
    assert set(stored_hashes(client, COLL)) == {c.point_id for c in remaining}


def test_other_model_or_dimension_is_refused(
        tmp_path: Path, client: QdrantClient, embedder: LocalEmbedder) -> None:
    chunks = load_corpus(write_docs(tmp_path / "docs", BOOK))
    sync_index(chunks[:3], embedder, client, COLL)
    assert collection_binding(client, COLL) == {"model_id": embedder.model_id,
                                                "dimension": 384}
    with pytest.raises(IndexMismatchError):
        ensure_collection(client, COLL, "cohere/embed-english-v3.0", 1024)
    with pytest.raises(IndexMismatchError):
        ensure_collection(client, COLL, "another-minilm", 384)  # same size, other model
    # a real Cohere embedder (never reached: the check comes first)
    cohere = CohereEmbedder("sk-unused", base_url="http://127.0.0.1:9", max_retries=0)
    with pytest.raises(IndexMismatchError):
        sync_index(chunks, cohere, client, COLL)
    with pytest.raises(IndexMismatchError):
        search(client, COLL, cohere, "balance")
    assert count_points(client, COLL) == 3
    with pytest.raises(StoreError):
        search(client, "missing", embedder, "balance")


def test_local_store_can_be_reopened_and_is_locked_while_open(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with open_store(path) as first:
        ensure_collection(first, COLL, "m", 4)
        import subprocess
        import sys
        code = ("import sys; from textbook_api.rag.store import open_client; "
                "from textbook_api.rag.errors import StoreError\n"
                "try:\n    open_client(sys.argv[1])\nexcept StoreError:\n    sys.exit(7)\n")
        result = subprocess.run([sys.executable, "-c", code, str(path)], check=False,
                                env=_env())
        assert result.returncode == 7, "another process is refused while the store is open"
    again = open_client(path)
    assert collection_binding(again, COLL) == {"model_id": "m", "dimension": 4}
    again.close()


def test_a_refused_open_leaves_no_store_file_open(tmp_path: Path) -> None:
    """A caller waiting for a held folder retries the open: each refusal must close what it
    opened (counted with the garbage collector off, which would otherwise close it later)."""
    path = tmp_path / "store"
    with open_store(path) as holder:
        ensure_collection(holder, COLL, "m", 4)
        held = _open_store_files(path)
        gc.disable()
        try:
            for _ in range(5):
                with pytest.raises(StoreError, match="in use by another process"):
                    open_client(path)
            assert _open_store_files(path) == held
        finally:
            gc.enable()


def _open_store_files(folder: Path) -> int:
    """File descriptors of this process open on a file under `folder`."""
    under = f"{folder.resolve()}{os.sep}"
    fds = Path("/proc/self/fd").iterdir()
    return sum(1 for fd in fds if os.path.realpath(fd).startswith(under))


def _env() -> dict[str, str]:
    import textbook_api
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(textbook_api.__file__).parents[1])
    return env
