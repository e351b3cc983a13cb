"""populate-embeddings end to end: the real packaged model, real Qdrant local mode, tmp corpora.

Cohere is the one fake: a local HTTP server on 127.0.0.1 standing in for its API.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models

from conftest import ROOT, FakeCohere, door_command, door_env, write_docs
from pipeline.local import free_port
from pipeline import cli
from pipeline.locks import file_lock
from textbook_api.rag.store import ensure_collection, open_store

KEY = "sk-cohere-SECRET-31337"

BOOK = {
    "intro.md": """
        ---
        title: Introduction
        ---
        # Introduction

        Physical AI studies machines that perceive and act in the physical world.

        ## Why bodies matter

        A body closes the loop between perception and action.
        """,
    "locomotion.md": """
        # Locomotion

        Walking robots must balance while moving their feet.

        ## Zero moment point

        The zero moment point must stay inside the support polygon formed by the feet.

        ## Capture point

        The capture point is where a robot must step to come to a complete stop.
        """,
    "grasping.md": """
        # Grasping

        Robot hands grasp objects using friction at the contact points.

        ## Friction cones

        The contact force must stay inside the friction cone to avoid slipping.
        """,
}


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    return write_docs(tmp_path / "docs", BOOK)


def populate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["populate-embeddings", *args])
    out, err = capsys.readouterr()
    return code, out, err


def counts(out: str) -> dict[str, int]:
    match = re.search(r"summary: added (\d+), updated (\d+), unchanged (\d+), deleted (\d+)"
                      r" chunks; (\d+) texts embedded", out)
    assert match, out
    names = ("added", "updated", "unchanged", "deleted", "embedded")
    return dict(zip(names, map(int, match.groups())))


def snapshot(data_dir: Path, collection: str = "textbook") -> dict[str, Any]:
    """Every point's id and payload: equal snapshots mean an unchanged index."""
    with open_store(data_dir / "qdrant") as client:
        if not client.collection_exists(collection):
            return {}
        points, _ = client.scroll(collection, limit=10_000, with_payload=True)
        return {str(p.id): p.payload for p in points}


def test_a_full_run_then_incremental_runs(
    settings_env: dict[str, str], docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = Path(settings_env["DATA_DIR"])
    code, out, _ = populate(capsys, "--docs-dir", str(docs))
    assert code == 0, out
    first = counts(out)
    assert first["added"] == first["embedded"] > 0
    assert first["updated"] == first["deleted"] == first["unchanged"] == 0
    assert re.search(r"recall@5 = 1\.000", out)
    report = re.search(r"artifact index-report: (\S+) \((\d+) bytes, sha256 ([0-9a-f]{64})\)", out)
    assert report, out
    record = json.loads(Path(report.group(1)).read_text())
    assert record["added"] == first["added"] and record["recall_at_k"] == 1.0
    assert Path(report.group(1)).parent == data.resolve() / "artifacts" / "populate-embeddings"
    assert len(snapshot(data)) == first["added"]

    code, out, _ = populate(capsys, "--docs-dir", str(docs))
    assert code == 0
    assert counts(out) == {"added": 0, "updated": 0, "unchanged": first["added"],
                           "deleted": 0, "embedded": 0}

    # One section edited, one section added, one file removed.
    (docs / "locomotion.md").write_text(
        (docs / "locomotion.md").read_text().replace("complete stop.", "complete halt.")
        + "\n## Gait cycles\n\nA gait cycle alternates stance and swing phases.\n")
    removed = len([p for p in snapshot(data).values() if p and p["source"] == "grasping.md"])
    (docs / "grasping.md").unlink()
    code, out, _ = populate(capsys, "--docs-dir", str(docs))
    assert code == 0, out
    third = counts(out)
    assert (third["added"], third["updated"], third["deleted"]) == (1, 1, removed)
    assert third["embedded"] == 2
    assert len(snapshot(data)) == first["added"] + 1 - removed


def test_dry_run_lists_the_changes_and_touches_nothing(
    settings_env: dict[str, str], docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = Path(settings_env["DATA_DIR"])
    code, out, _ = populate(capsys, "--docs-dir", str(docs), "--dry-run")
    assert code == 0
    assert "(would add 7, update 0, delete 0, leave 0 unchanged of 7 chunks)" in out
    assert "dry run: nothing was changed" in out
    assert not data.exists()

    assert populate(capsys, "--docs-dir", str(docs))[0] == 0
    (docs / "intro.md").write_text("# Introduction\n\nRewritten entirely.\n")
    before = snapshot(data)
    code, out, _ = populate(capsys, "--docs-dir", str(docs), "--dry-run")
    assert code == 0
    assert "(would add 0, update 1, delete 1, leave 5 unchanged of 6 chunks)" in out
    assert snapshot(data) == before

    with open_store(data / "qdrant"):  # another process (here: handle) holds the local store
        code, out, _ = populate(capsys, "--docs-dir", str(docs), "--dry-run")
    assert code == 0
    assert "counts unavailable: the local store is in use by another process" in out


@pytest.mark.parametrize("layout", ["missing", "empty", "only-drafts"])
def test_an_empty_or_missing_docs_folder_exits_2_and_deletes_nothing(
    settings_env: dict[str, str], docs: Path, tmp_path: Path, layout: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = Path(settings_env["DATA_DIR"])
    assert populate(capsys, "--docs-dir", str(docs))[0] == 0
    before = snapshot(data)
    bad = tmp_path / "bad-docs"
    if layout == "empty":
        bad.mkdir()
    elif layout == "only-drafts":
        write_docs(bad, {"a.md": "---\ndraft: true\n---\n# A\n\nDraft text here.\n"})
    for extra in ((), ("--dry-run",), ("--allow-mass-delete",)):
        code, out, err = populate(capsys, "--docs-dir", str(bad), *extra)
        assert code == 2
        assert "plan" not in out
        assert str(bad) in err
    assert snapshot(data) == before


def test_the_mass_delete_guard_needs_the_flag(
    settings_env: dict[str, str], docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = Path(settings_env["DATA_DIR"])
    assert populate(capsys, "--docs-dir", str(docs))[0] == 0
    before = snapshot(data)
    (docs / "locomotion.md").unlink()
    (docs / "grasping.md").unlink()
    code, out, err = populate(capsys, "--docs-dir", str(docs))
    assert code == 2
    assert "refusing to delete 5 of 7 indexed chunks" in err
    assert snapshot(data) == before
    assert populate(capsys, "--docs-dir", str(docs), "--dry-run")[0] == 2
    assert populate(capsys, "--docs-dir", str(docs), "--max-delete-fraction", "0.9")[0] == 0
    assert len(snapshot(data)) == 2


def test_bad_options_exit_2(settings_env: dict[str, str], docs: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    for args in (("--max-delete-fraction", "1.5"), ("--min-recall", "high"),
                 ("--recall-k", "0"), ("--lock-timeout", "-1")):
        code, _, err = populate(capsys, "--docs-dir", str(docs), *args)
        assert code == 2, args
        assert args[0] in err


def test_a_held_lock_exits_3_naming_the_holder(
    settings_env: dict[str, str], docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = Path(settings_env["DATA_DIR"]).resolve() / "locks" / "populate-embeddings.lock"
    with file_lock(lock, "populate-embeddings", 0):
        code, _, err = populate(capsys, "--docs-dir", str(docs), "--lock-timeout", "0")
    assert code == 3
    assert "textbook-pipeline populate-embeddings pid=" in err
    assert not (Path(settings_env["DATA_DIR"]) / "qdrant").exists()


def test_a_store_held_by_another_process_exits_3(
    settings_env: dict[str, str], docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = Path(settings_env["DATA_DIR"])
    assert populate(capsys, "--docs-dir", str(docs))[0] == 0
    with open_store(data / "qdrant"):
        code, _, err = populate(capsys, "--docs-dir", str(docs), "--lock-timeout", "0")
    assert code == 3
    assert "is in use by another process" in err


def test_a_collection_of_another_model_exits_2(
    settings_env: dict[str, str], docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = Path(settings_env["DATA_DIR"])
    with open_store(data / "qdrant") as client:
        ensure_collection(client, "textbook", "cohere/embed-english-v3.0", 1024)
    for extra in ((), ("--dry-run",)):
        code, _, err = populate(capsys, "--docs-dir", str(docs), *extra)
        assert code == 2
        assert "built with model 'cohere/embed-english-v3.0' (dimension 1024)" in err
    assert snapshot(data) == {}


# --------------------------------------------------------------------------- Cohere


@pytest.fixture
def cohere(
    fake_cohere: FakeCohere, monkeypatch: pytest.MonkeyPatch, settings_env: dict[str, str]
) -> FakeCohere:
    for name, value in {"EMBEDDER": "cohere", "COHERE_API_KEY": KEY,
                        "COHERE_BASE_URL": fake_cohere.url,
                        "COHERE_EMBED_DIMENSION": str(fake_cohere.dimension),
                        "COHERE_MAX_RETRIES": "1"}.items():
        monkeypatch.setenv(name, value)
    return fake_cohere


def test_cohere_down_exits_1_with_the_index_unchanged(
    cohere: FakeCohere, settings_env: dict[str, str], docs: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    data = Path(settings_env["DATA_DIR"])
    # Fake vectors retrieve nothing meaningful: the recall gate is not what is tested here.
    code, out, _ = populate(capsys, "--docs-dir", str(docs), "--min-recall", "0")
    assert code == 0, out
    assert counts(out)["embedded"] == 7
    before = snapshot(data)
    assert {p["model_id"] for p in before.values()} == {"cohere/embed-english-v3.0"}

    (docs / "intro.md").write_text("# Introduction\n\nRewritten.\n\n## New part\n\nMore text.\n")
    cohere.status = 500
    code, out, err = populate(capsys, "--docs-dir", str(docs), "--min-recall", "0")
    assert code == 1
    assert "embedding failed; the index was not changed" in err
    assert "HTTP 500" in err
    assert len(cohere.requests) > 1  # retried
    assert KEY not in out + err
    assert snapshot(data) == before

    monkeypatch.setenv("COHERE_BASE_URL", f"http://127.0.0.1:{free_port()}")
    code, out, err = populate(capsys, "--docs-dir", str(docs), "--min-recall", "0")
    assert code == 1
    assert "cannot reach Cohere" in err
    assert KEY not in out + err
    assert snapshot(data) == before


def test_cohere_without_a_key_exits_2(
    settings_env: dict[str, str], docs: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EMBEDDER", "cohere")
    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    code, _, err = populate(capsys, "--docs-dir", str(docs), "--dry-run")
    assert code == 2
    assert "COHERE_API_KEY" in err


# --------------------------------------------------------------------------- doors


@pytest.mark.integration
@pytest.mark.database_independent
@pytest.mark.parametrize("door", ["script", "invoke"])
def test_each_door_indexes(door: str, tmp_path: Path, docs: Path) -> None:
    env = door_env({"DATA_DIR": str(tmp_path / "data"),
                    "DATABASE_URL": f"sqlite:///{tmp_path}/data/textbook.db"})
    result = subprocess.run(door_command(door, "populate-embeddings", "--docs-dir", str(docs)),
                            env=env, capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert counts(result.stdout)["added"] == 7
    assert "embed [" in result.stderr  # the progress bar
    assert len(snapshot(tmp_path / "data")) == 7


def test_the_script_door_without_an_environment_exits_2(tmp_path: Path) -> None:
    env = door_env({"PIPELINE_PYTHON": str(tmp_path / "no-python")})
    result = subprocess.run(door_command("script", "populate-embeddings", "--dry-run"), env=env,
                            capture_output=True, text=True, check=False, cwd=tmp_path)
    assert result.returncode == 2
    assert "no Python environment at" in result.stderr


# --------------------------------------------------------------------------- validation cost


def heading_queries(out: str) -> tuple[int, int]:
    match = re.search(r"heading queries: (\d+) embedded, (\d+) reused", out)
    assert match, out
    return int(match.group(1)), int(match.group(2))


def test_heading_vectors_are_reused_and_a_changed_heading_is_embedded(
    settings_env: dict[str, str], docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = populate(capsys, "--docs-dir", str(docs))
    assert code == 0, out
    embedded, reused = heading_queries(out)
    assert embedded > 0 and reused == 0

    # A section's text edited, its heading kept: the store changes, so the headings are
    # searched again (a run with nothing changed does not search: see the next test).
    (docs / "intro.md").write_text(
        (docs / "intro.md").read_text().replace("closes the loop", "closes a loop"))
    code, out, _ = populate(capsys, "--docs-dir", str(docs))
    assert code == 0, out
    assert counts(out)["updated"] == 1
    assert heading_queries(out) == (0, embedded)

    (docs / "grasping.md").write_text(
        (docs / "grasping.md").read_text().replace("## Friction cones", "## Contact friction"))
    code, out, _ = populate(capsys, "--docs-dir", str(docs))
    assert code == 0, out
    assert heading_queries(out) == (1, embedded - 1)

    cache = next((Path(settings_env["DATA_DIR"]) / "cache" / "populate-embeddings").glob("*"))
    cache.write_bytes(b"not a numpy file")  # a damaged cache only costs time
    (docs / "intro.md").write_text(
        (docs / "intro.md").read_text().replace("closes a loop", "closes the loop"))
    code, out, _ = populate(capsys, "--docs-dir", str(docs))
    assert code == 0, out
    assert heading_queries(out) == (embedded, 0)


def test_a_broken_index_still_fails_validation_with_cached_heading_vectors(
    settings_env: dict[str, str], docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = Path(settings_env["DATA_DIR"])
    code, out, _ = populate(capsys, "--docs-dir", str(docs), "--recall-k", "1")
    assert code == 0, out
    assert re.search(r"recall@1 = 1\.000", out)

    # Break the index behind the indexer's back: every point gets another point's vector,
    # payloads (and so the content hashes the sync compares) untouched.
    with open_store(data / "qdrant") as client:
        points, _ = client.scroll("textbook", limit=100, with_vectors=True)
        vectors = [p.vector for p in points]
        client.update_vectors("textbook", points=[
            models.PointVectors(id=p.id, vector=vectors[(i + 1) % len(vectors)])
            for i, p in enumerate(points)])

    code, out, err = populate(capsys, "--docs-dir", str(docs), "--recall-k", "1")
    assert code == 1
    assert counts(out)["embedded"] == 0  # nothing changed as far as the sync can tell
    assert heading_queries(out)[0] == 0  # the headings' vectors came from the cache
    assert "is below the threshold" in err


@pytest.mark.integration
def test_on_a_terminal_the_progress_is_drawn_by_rich(tmp_path: Path, docs: Path) -> None:
    env = door_env({"DATA_DIR": str(tmp_path / "data"),
                    "DATABASE_URL": f"sqlite:///{tmp_path}/data/textbook.db",
                    "COLUMNS": "120", "TERM": "xterm"})
    env.pop("NO_COLOR", None)
    leader, follower = pty.openpty()
    drawn = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            drawn.extend(chunk)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    process = subprocess.run(
        [sys.executable, "-m", "pipeline", "populate-embeddings", "--docs-dir", str(docs)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=follower, text=True, check=False)
    os.close(follower)
    reader.join(timeout=30)
    os.close(leader)
    terminal = drawn.decode("utf-8", "replace")
    assert process.returncode == 0, terminal
    assert "━" in terminal and "7/7" in terminal  # rich's bar, redrawn in place
    assert "embed [" not in terminal  # not the plain lines meant for logs


# `python -m pipeline ARGS`, as the doors run it, listing at exit every module it imported.
LIST_MODULES = ("import atexit, runpy, sys;"
                " atexit.register(lambda: print(*(f'module {name}' for name in sys.modules),"
                " sep='\\n', file=sys.stderr));"
                " runpy.run_module('pipeline', run_name='__main__', alter_sys=True)")


def imported_by(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    result = subprocess.run([sys.executable, "-c", LIST_MODULES, *args], env=door_env(),
                            cwd=ROOT, capture_output=True, text=True, check=False)
    modules = set(re.findall(r"^module (\S+)$", result.stderr, re.M))
    assert "pipeline.cli" in modules, result.stderr[-2000:]  # the listing itself works
    return result, modules


# What start-up must not pay for: Qdrant's client (~0.7 s), the ONNX runtime, numpy, and the
# operations (with their libraries) that were not asked for.
NOT_AT_START_UP = {"qdrant_client", "onnxruntime", "numpy", "pipeline.operations.run_migrations",
                   "pipeline.operations.build_image", "pipeline.operations.build_frontend",
                   "pipeline.operations.status", "pipeline.targets", "alembic"}


def test_help_imports_only_the_operation_asked_for() -> None:
    result, modules = imported_by("populate-embeddings", "--help")
    assert result.returncode == 0
    assert "--max-delete-fraction FRACTION" in result.stdout
    assert "pipeline.operations.populate_embeddings" in modules
    assert not modules & NOT_AT_START_UP


def test_a_run_with_nothing_changed_opens_neither_the_store_nor_the_model(
    settings_env: dict[str, str], docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = populate(capsys, "--docs-dir", str(docs))
    assert code == 0, out
    recall = re.search(r"recall@5 = ([\d.]+)", out)
    assert recall
    headings, _ = heading_queries(out)

    result, modules = imported_by("populate-embeddings", "--docs-dir", str(docs))
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert "the store is not opened" in result.stdout
    assert f"recall@5 = {recall.group(1)} (threshold 0.8); measured on these very points" \
        in result.stdout
    assert counts(result.stdout) == {"added": 0, "updated": 0, "unchanged": 7, "deleted": 0,
                                     "embedded": 0}
    assert not modules & NOT_AT_START_UP

    # Another k is another validation: the store is searched again.
    code, out, _ = populate(capsys, "--docs-dir", str(docs), "--recall-k", "1")
    assert code == 0, out
    assert "the store is not opened" not in out
    assert heading_queries(out) == (0, headings)


def test_the_stamped_recall_is_still_held_against_the_threshold(
    settings_env: dict[str, str], docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert populate(capsys, "--docs-dir", str(docs))[0] == 0
    stamp = Path(settings_env["DATA_DIR"]) / "cache" / "populate-embeddings-validated.json"
    record = json.loads(stamp.read_text())
    stamp.write_text(json.dumps({**record, "recall": 0.5}))

    code, out, err = populate(capsys, "--docs-dir", str(docs))
    assert code == 1
    assert "the store is not opened" in out
    assert "recall@5 0.500 is below the threshold 0.8" in err
