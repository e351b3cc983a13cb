"""Content digests of artifacts: one file, or a whole tree (sorted paths and bytes)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


@dataclass(frozen=True)
class Digest:
    sha256: str
    size_bytes: int


def digest(path: Path) -> Digest:
    """A file's sha256; for a folder, the sha256 of each relative path and its bytes, in order."""
    hasher = hashlib.sha256()
    size = 0
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            hasher.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                hasher.update(chunk)
                size += len(chunk)
    return Digest(hasher.hexdigest(), size)
