"""The stamp of the last validated index: how a run with nothing to do proves it cheaply.

After a run of populate-embeddings validates, it keeps a stamp: a key over everything the run
indexed and checked (the store's location, the collection, the embedder's model and dimension,
the chunker's version, the recall's k and every chunk as stored), the sha256 of the local
store's files as the run left them (after closing the store), and the recall it measured.

A later run whose key and store files hash the same (read under the store's own lock, held
to the end of the run, as an open store would be) has nothing to write, and its validation
would search the very points, with the very headings, that the stamped run searched: the recall
is the stamped one (still held against this run's threshold). That run neither opens the store
nor loads the model: Qdrant's client alone costs ~0.7 s of start-up, most of a no-op run.
Anything else (a doc edited, the store written by anyone, even one vector changed behind the
indexer's back, another k, another model) and the run syncs and validates in full. A Qdrant
server has no files to hash: against one, every run does.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from textbook_api.rag.chunking import CHUNKER_VERSION, Chunk

# Qdrant local mode holds this file with portalocker, whose POSIX lock is fcntl.flock: taking
# the same flock excludes every client of the store (portalocker itself costs ~0.3 s to import).
# It tells who holds the store, not what the store holds: it is not hashed.
_LOCK_FILE = ".lock"


@dataclass(frozen=True)
class IndexStamp:
    key: str
    store: str
    recall: float
    finished_at: str


def index_key(*, store: str, collection: str, model_id: str, dimension: int, recall_k: int,
              chunks: Sequence[Chunk]) -> str:
    digest = hashlib.sha256(json.dumps(
        [store, collection, model_id, dimension, CHUNKER_VERSION, recall_k]).encode())
    for chunk in sorted(chunks, key=lambda c: c.point_id):
        digest.update(json.dumps(asdict(chunk), sort_keys=True).encode())
    return digest.hexdigest()


def store_digest(folder: Path) -> str | None:
    """sha256 over the names and contents of a local store's files; None without a store."""
    files = sorted(path for path in folder.rglob("*")
                   if path.is_file() and path.name != _LOCK_FILE) if folder.is_dir() else []
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as file:
            digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()


def hold_if_unchanged(folder: Path, digest: str) -> TextIO | None:
    """The local store's lock, taken without waiting, when its files hash to ``digest``;
    closing it releases the store. None (holding nothing) when another process holds the
    store, or there is none, or it differs."""
    try:
        lock = (folder / _LOCK_FILE).open("r+", encoding="utf-8")
    except OSError:
        return None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        return None
    if store_digest(folder) != digest:
        lock.close()
        return None
    return lock


def load_stamp(path: Path) -> IndexStamp | None:
    """The stamp kept at ``path``; None when there is none or it cannot be read (a stamp
    only ever saves time)."""
    try:
        stamp = IndexStamp(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    fields = (stamp.key, stamp.store, stamp.finished_at)
    if not (all(isinstance(field, str) for field in fields)
            and isinstance(stamp.recall, float)):
        return None
    return stamp


def save_stamp(path: Path, stamp: IndexStamp) -> None:
    """Write atomically: a crash leaves the old stamp or the new one, never half of one.
    Raises OSError when it cannot be written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".json.tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(asdict(stamp), file)
        os.replace(temp, path)
    except OSError:
        Path(temp).unlink(missing_ok=True)
        raise
