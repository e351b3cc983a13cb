"""A sync killed with SIGKILL mid-run converges when run again (real subprocess)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_docs
from textbook_api.rag.chunking import load_corpus
from textbook_api.rag.embedders import LocalEmbedder
from textbook_api.rag.indexer import stored_hashes, sync_index
from textbook_api.rag.store import open_store

from .conftest import BOOK

CHILD = """
import sys
from textbook_api.rag.chunking import load_corpus
from textbook_api.rag.embedders import LocalEmbedder
from textbook_api.rag.indexer import sync_index
from textbook_api.rag.store import open_store

docs, store = sys.argv[1], sys.argv[2]
embedder = LocalEmbedder()
chunks = load_corpus(docs, count_tokens=embedder.count_tokens)

def progress(event):
    print(event.phase, event.done, event.total, flush=True)
    sys.stdin.readline()  # the parent kills us here (or lets us go on)

with open_store(store) as client:
    sync_index(chunks, embedder, client, "book", batch_size=2, progress=progress)
print("finished", flush=True)
"""


@pytest.mark.parametrize("kill_at", ["first-upsert", "last-upsert"])
def test_kill_9_then_rerun_converges(tmp_path: Path, embedder: LocalEmbedder,
                                     kill_at: str) -> None:
    docs = write_docs(tmp_path / "docs", BOOK)
    store = tmp_path / "store"
    old = load_corpus(docs, count_tokens=embedder.count_tokens)
    with open_store(store) as client:
        sync_index(old, embedder, client, "book")
    # v2: one section edited, one file removed, one added
    (docs / "grasping.md").unlink()
    text = (docs / "intro.md").read_text()
    (docs / "intro.md").write_text(text.replace("Errors compound over time.",
                                                "Small errors compound quickly."))
    write_docs(docs, {"hands.md": "# Hands\n\n## Tendons\n\nTendon-driven fingers.\n\n"
                                  "## Tactile skin\n\nTactile sensors feel contact.\n\n"
                                  "## Thumbs\n\nOpposable thumbs help.\n"})
    new = load_corpus(docs, count_tokens=embedder.count_tokens)
    to_write = {c.point_id for c in new} - {c.point_id for c in old} | {
        c.point_id for c in new if c.content_hash not in {o.content_hash for o in old}}
    stale = {c.point_id for c in old} - {c.point_id for c in new}
    assert len(to_write) >= 4 and stale

    import textbook_api
    env = dict(os.environ, PYTHONPATH=str(Path(textbook_api.__file__).parents[1]))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(docs), str(store)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdin is not None and child.stdout is not None
    killed = False
    for line in child.stdout:
        phase, done, total = line.split()
        if kill_at == "first-upsert" or (phase == "upsert" and done == total):
            os.kill(child.pid, signal.SIGKILL)
            killed = True
            break
        child.stdin.write("\n")
        child.stdin.flush()
    child.wait(timeout=60)
    assert killed and child.returncode == -signal.SIGKILL

    with open_store(store) as client:
        after_kill = stored_hashes(client, "book")
        # deletes come after writes: every stale point is still there after the crash
        assert stale <= set(after_kill)
        report = sync_index(new, embedder, client, "book")
        if kill_at == "last-upsert":
            assert report.texts_embedded == 0, "everything was written before the kill"
        assert report.deleted == len(stale)
        final = stored_hashes(client, "book")
        assert set(final) == {c.point_id for c in new}
        assert client.count("book", exact=True).count == len(new)
        assert sync_index(new, embedder, client, "book").texts_embedded == 0
