"""populate-embeddings: index the textbook into the vector store, incrementally, under a lock.

The docs are chunked (their folder is validated while planning, so a missing or empty folder
exits 2 before anything is touched, dry run included), the store's collection is checked to be
bound to the configured embedder (another model or dimension: exit 2), and only added or
changed chunks are embedded. Embedding happens in full before the first write: if the embedder
fails (Cohere unreachable, rate-limited past its retries...) the run exits 1 with the index
exactly as it was. Then the library's `sync_index` upserts the new points and only after them
deletes stale ones, refusing to delete more than `--max-delete-fraction` of the index unless
`--allow-mass-delete` (exit 2, nothing changed). Recall@k over the chunks' own headings is then
checked against `--min-recall` (exit 1 below it), searching the index afresh on every run that
found something changed, with the headings' vectors kept in
`<DATA_DIR>/cache/populate-embeddings/` (a heading is embedded only when its text is new), and
an index report is written as an artifact.

A run that finds the chunks, the settings and the local store's files exactly as the last
validated run left them (the stamp `<DATA_DIR>/cache/populate-embeddings-validated.json`, see
pipeline/index_stamp.py) has nothing to write and nothing new to validate: it opens neither the
store nor the model, and holds the stamped recall against `--min-recall`.

`--dry-run` prints the plan and, read-only, what the run would add, update and delete.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core import Operation, Option, OptionValue, Plan, Run, Step
from pipeline.errors import LockHeld, OperationFailed, UsageError
from pipeline.index_stamp import (
    IndexStamp,
    hold_if_unchanged,
    index_key,
    load_stamp,
    save_stamp,
    store_digest,
)
from pipeline.locks import file_lock
from pipeline.progress import Update, progress_bars
from textbook_api.config import Settings
from textbook_api.rag.chunking import CHUNKER_VERSION, Chunk, load_corpus
from textbook_api.rag.embedders import Embedder
from textbook_api.rag.errors import (
    CorpusError,
    EmbedderError,
    IndexMismatchError,
    MassDeleteError,
    ModelFilesError,
)
from textbook_api.rag.indexer import (
    IndexReport,
    plan_sync,
    stored_hashes,
    sync_index,
)
from textbook_api.rag.search import recall_at_k
from textbook_api.rag.store import check_collection
from textbook_api.services.retrieval import (
    StoreBusyError,
    describe_embedder,
    get_embedder,
    local_store_exists,
    open_writer_store,
    store_location,
)

if TYPE_CHECKING:  # imported when the store is opened (see textbook_api/rag/store.py)
    from qdrant_client import QdrantClient

NAME = "populate-embeddings"

OPTIONS = (
    Option("docs_dir", "folder of .md/.mdx docs to index (default: DOCS_DIR)", None, "DIR"),
    Option(
        "allow_mass_delete",
        "delete stale chunks even beyond the max delete fraction (the crawl is really smaller)",
        False,
    ),
    Option(
        "max_delete_fraction",
        "refuse to delete more than this share of the indexed chunks"
        " (default: INDEX_MAX_DELETE_FRACTION)",
        None,
        "FRACTION",
    ),
    Option("recall_k", "validation: top K searched per heading (default: RECALL_K)", None, "K"),
    Option(
        "min_recall",
        "validation: fail when recall@k is below this (default: RECALL_THRESHOLD)",
        None,
        "FRACTION",
    ),
    Option("lock_timeout", "seconds to wait for another run's lock and the store", 30, "SECONDS"),
)

_DEFAULT_BATCH = 64


class PrecomputedEmbedder:
    """The run's embedder with this run's document vectors already computed.

    `sync_index` embeds batch by batch between its writes; handing it vectors computed
    beforehand means a failing provider can never leave half a sync in the store.
    """

    def __init__(self, embedder: Embedder, vectors: Mapping[str, list[float]]) -> None:
        self._embedder = embedder
        self._vectors = vectors
        self.embedded_late = 0  # texts the plan did not foresee (the store changed meanwhile)

    @property
    def model_id(self) -> str:
        return self._embedder.model_id

    @property
    def dimension(self) -> int:
        return self._embedder.dimension

    @property
    def max_tokens(self) -> int:
        return self._embedder.max_tokens

    def count_tokens(self, text: str) -> int:
        return self._embedder.count_tokens(text)

    def embed_query(self, text: str) -> list[float]:
        return self._embedder.embed_query(text)

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        return self._embedder.embed_queries(texts)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        missing = [text for text in texts if text not in self._vectors]
        late = dict(zip(missing, self._embedder.embed_documents(missing))) if missing else {}
        self.embedded_late += len(missing)
        return [self._vectors[text] if text in self._vectors else late[text] for text in texts]


def embed_all(embedder: Embedder, texts: Sequence[str], update: Update) -> dict[str, list[float]]:
    """Every text's vector, by text; batches of similar length (less padding)."""
    unique = sorted(set(texts), key=len)
    batch = int(getattr(embedder, "batch_size", _DEFAULT_BATCH))
    vectors: dict[str, list[float]] = {}
    update("embed", 0, len(unique))
    for start in range(0, len(unique), batch):
        part = unique[start:start + batch]
        vectors.update(zip(part, embedder.embed_documents(part)))
        update("embed", min(start + batch, len(unique)), len(unique))
    return vectors


def _fraction(value: OptionValue, default: float, flag: str) -> float:
    if value is None:
        return default
    try:
        number = float(str(value))
    except ValueError:
        raise UsageError(f"{flag} must be a number between 0 and 1, not {value!r}") from None
    if not 0 <= number <= 1:
        raise UsageError(f"{flag} must be between 0 and 1, not {value}")
    return number


def _positive(value: OptionValue, default: int, flag: str) -> int:
    if value is None:
        return default
    try:
        number = int(str(value))
    except ValueError:
        raise UsageError(f"{flag} must be a whole number, not {value!r}") from None
    if number < 1:
        raise UsageError(f"{flag} must be 1 or more, not {value}")
    return number


def _load_embedder(settings: Settings) -> Embedder:
    try:
        return get_embedder(settings)
    except ModelFilesError as error:
        raise UsageError(f"the embedding model cannot be loaded: {error}") from None
    except EmbedderError as error:
        raise UsageError(str(error)) from None


def _chunk(docs_dir: Path, embedder: Embedder) -> list[Chunk]:
    try:
        return load_corpus(docs_dir, count_tokens=embedder.count_tokens,
                           max_tokens=embedder.max_tokens)
    except CorpusError as error:
        raise UsageError(f"docs: {error}") from None


def _check_binding(client: QdrantClient, settings: Settings, embedder: Embedder) -> bool:
    try:
        return check_collection(client, settings.qdrant_collection, embedder.model_id,
                                embedder.dimension)
    except IndexMismatchError as error:
        raise UsageError(f"{error} (set QDRANT_COLLECTION or EMBEDDER)") from None


def _guard(to_delete: int, existing: int, fraction: float, allow: bool) -> None:
    if to_delete and existing and not allow and to_delete > fraction * existing:
        raise UsageError(
            f"refusing to delete {to_delete} of {existing} indexed chunks (more than"
            f" {fraction:.0%}): is the docs folder complete? pass --allow-mass-delete to confirm")


def preview(settings: Settings, docs_dir: Path, fraction: float, allow: bool) -> str:
    """What a run would change, computed read-only (for `--dry-run`)."""
    embedder = _load_embedder(settings)
    chunks = _chunk(docs_dir, embedder)
    stored: dict[str, str] = {}
    if settings.qdrant_url or local_store_exists(settings):
        try:
            with open_writer_store(settings, wait=0) as client:
                if _check_binding(client, settings, embedder):
                    stored = stored_hashes(client, settings.qdrant_collection)
        except StoreBusyError:
            return "(counts unavailable: the local store is in use by another process)"
        except UsageError:
            raise
        except Exception as error:  # a Qdrant server that is down: the plan still prints
            return f"(counts unavailable: {type(error).__name__})"
    sync = plan_sync(chunks, stored, embedder.model_id)
    _guard(len(sync.stale), sync.existing, fraction, allow)
    return (f"(would add {len(sync.added)}, update {len(sync.updated)}, delete"
            f" {len(sync.stale)}, leave {sync.unchanged} unchanged of {len(chunks)} chunks)")


@dataclass
class _Indexing:
    """What the indexing steps hand each other."""

    started: float = 0.0
    loaded: Embedder | None = None
    chunks: list[Chunk] = field(default_factory=list)
    opened: QdrantClient | None = None
    stored: dict[str, str] = field(default_factory=dict)
    vectors: dict[str, list[float]] = field(default_factory=dict)
    written: IndexReport | None = None
    texts_embedded: int = 0
    seconds: float = 0.0
    recall: float = 0.0
    key: str = ""
    # The last validated run's stamp, when this run found everything as that run left it.
    unchanged_since: IndexStamp | None = None
    validated: bool = False

    @property
    def embedder(self) -> Embedder:
        if self.loaded is None:
            raise OperationFailed("no embedder was loaded")
        return self.loaded

    @property
    def client(self) -> QdrantClient:
        if self.opened is None:
            raise OperationFailed("the store was not opened")
        return self.opened

    @property
    def report(self) -> IndexReport:
        if self.written is None:
            raise OperationFailed("nothing was written")
        return self.written


def summary(report: IndexReport, texts_embedded: int, seconds: float) -> str:
    return (f"added {report.added}, updated {report.updated}, unchanged {report.unchanged},"
            f" deleted {report.deleted} chunks; {texts_embedded} texts embedded;"
            f" {seconds:.1f}s")


def plan(settings: Settings, options: Mapping[str, OptionValue]) -> Plan:
    docs_dir = Path(str(options["docs_dir"] or settings.docs_dir)).resolve()
    fraction = _fraction(options["max_delete_fraction"], settings.index_max_delete_fraction,
                         "--max-delete-fraction")
    min_recall = _fraction(options["min_recall"], settings.recall_threshold, "--min-recall")
    recall_k = _positive(options["recall_k"], settings.recall_k, "--recall-k")
    allow = bool(options["allow_mass_delete"])
    timeout = int(options["lock_timeout"] or 0)
    if timeout < 0:
        raise UsageError("--lock-timeout must be zero or more seconds")
    if settings.embedder == "cohere" and not (
            settings.cohere_api_key and settings.cohere_api_key.get_secret_value()):
        raise UsageError("EMBEDDER=cohere needs COHERE_API_KEY in the environment")
    try:  # validated now, with a tokenizer-free estimate: nothing is loaded or touched yet
        files = len({chunk.source for chunk in load_corpus(docs_dir)})
    except CorpusError as error:
        raise UsageError(f"docs: {error}") from None
    data_dir = settings.data_dir.resolve()
    lock_path = data_dir / "locks" / f"{NAME}.lock"
    artifacts = data_dir / "artifacts" / NAME
    query_cache = data_dir / "cache" / NAME
    stamp_path = data_dir / "cache" / f"{NAME}-validated.json"
    local_store = None if settings.qdrant_url else settings.qdrant_local_path.resolve()
    collection = settings.qdrant_collection
    would = " " + preview(settings, docs_dir, fraction, allow) if options["dry_run"] else ""

    state = _Indexing()

    def lock(run: Run) -> None:
        run.resources.enter_context(file_lock(lock_path, NAME, timeout))
        state.started = time.perf_counter()

    def load(run: Run) -> None:
        embedder = state.loaded = _load_embedder(settings)
        run.console.print(f"    {embedder.model_id} ({embedder.dimension}-d)")

    def chunk(run: Run) -> None:
        chunks = state.chunks = _chunk(docs_dir, state.embedder)
        count = len({c.source for c in chunks})
        run.console.print(f"    {len(chunks)} chunks from {count} files")

    def remember(run: Run) -> None:
        """After the store is closed: stamp what this run validated."""
        digest = store_digest(local_store) if local_store and state.validated else None
        if digest is None:
            return
        finished = datetime.now(UTC).isoformat()
        try:
            save_stamp(stamp_path, IndexStamp(state.key, digest, state.recall, finished))
        except OSError as error:  # the stamp only saves the next run time
            run.console.print(f"warning: the index stamp {stamp_path} was not saved: {error}")

    def open_store(run: Run) -> None:
        embedder = state.embedder
        state.key = index_key(store=store_location(settings), collection=collection,
                              model_id=embedder.model_id, dimension=embedder.dimension,
                              recall_k=recall_k, chunks=state.chunks)
        stamp = load_stamp(stamp_path) if local_store else None
        if stamp is not None and stamp.key == state.key and local_store is not None and \
                (held := hold_if_unchanged(local_store, stamp.store)) is not None:
            run.resources.enter_context(held)
            state.unchanged_since = stamp
            run.console.print(f"    chunks, settings and store files are as the validated run"
                              f" of {stamp.finished_at} left them: the store is not opened")
            return
        run.resources.callback(remember, run)  # runs once the store below is closed
        # Past the stamp a run embeds as a rule (changed chunks, the validation's new headings):
        # the local model loads in a thread while the store opens (Qdrant's import is Python,
        # the model's load mostly native code that releases the GIL).
        preload = getattr(embedder, "preload", None)
        if preload is not None:
            threading.Thread(target=preload, name="load-model", daemon=True).start()
        try:
            client = run.resources.enter_context(open_writer_store(settings, wait=timeout))
        except StoreBusyError as error:
            raise LockHeld(f"{error}; waited {timeout}s") from None
        state.opened = client
        if _check_binding(client, settings, state.embedder):
            stored = stored_hashes(client, collection)
            run.console.print(f"    collection {collection}: {len(stored)} points")
        else:
            stored = {}
            run.console.print(f"    collection {collection} does not exist yet")
        state.stored = stored

    def embed(run: Run) -> None:
        if state.unchanged_since is not None:
            run.console.print(f"    0 added, 0 updated, {len(state.chunks)} unchanged, 0 stale")
            return
        embedder = state.embedder
        sync = plan_sync(state.chunks, state.stored, embedder.model_id)
        _guard(len(sync.stale), sync.existing, fraction, allow)
        texts = [c.embed_text for c in (*sync.added, *sync.updated)]
        run.console.print(f"    {len(sync.added)} added, {len(sync.updated)} updated,"
                          f" {sync.unchanged} unchanged, {len(sync.stale)} stale")
        try:
            with progress_bars(run.console.redact) as update:
                state.vectors = embed_all(embedder, texts, update)
        except EmbedderError as error:
            raise OperationFailed(f"embedding failed; the index was not changed: {error}") \
                from None

    def write(run: Run) -> None:
        if state.unchanged_since is not None:
            report = IndexReport(0, 0, len(state.chunks), 0, 0, 0.0, state.embedder.model_id,
                                 collection)
            seconds = time.perf_counter() - state.started
            state.written, state.seconds = report, seconds
            run.console.print(f"    summary: {summary(report, 0, seconds)}")
            return
        embedder = PrecomputedEmbedder(state.embedder, state.vectors)
        try:
            with progress_bars(run.console.redact) as update:
                report = sync_index(
                    state.chunks, embedder, state.client, collection,
                    max_delete_fraction=fraction, allow_mass_delete=allow,
                    progress=lambda step: update(step.phase, step.done, step.total))
        except MassDeleteError as error:
            raise UsageError(f"{error}; nothing was changed") from None
        except EmbedderError as error:
            raise OperationFailed(f"embedding failed during the write: {error}") from None
        texts = len(state.vectors) + embedder.embedded_late
        seconds = time.perf_counter() - state.started
        state.written, state.texts_embedded, state.seconds = report, texts, seconds
        run.console.print(f"    summary: {summary(report, texts, seconds)}")

    def validate(run: Run) -> None:
        if state.unchanged_since is not None:
            recall = state.unchanged_since.recall
            run.console.print(f"    recall@{recall_k} = {recall:.3f} (threshold {min_recall:g});"
                              " measured on these very points and headings by the run of"
                              f" {state.unchanged_since.finished_at}")
        else:
            # Imported here (with numpy): a good part of a run that validates nothing.
            from textbook_api.rag.query_cache import QueryVectorCache

            queries = QueryVectorCache(query_cache, state.embedder)
            try:
                recall = recall_at_k(state.client, collection, state.embedder,
                                     state.chunks, k=recall_k, queries=queries)
            except EmbedderError as error:
                raise OperationFailed(f"validation could not embed its queries: {error}") \
                    from None
            run.console.print(f"    recall@{recall_k} = {recall:.3f} (threshold {min_recall:g});"
                              f" heading queries: {queries.embedded} embedded,"
                              f" {queries.reused} reused from {queries.path}")
        state.recall = recall
        if recall < min_recall:
            raise OperationFailed(
                f"recall@{recall_k} {recall:.3f} is below the threshold {min_recall:g}:"
                " headings no longer find their own sections")
        state.validated = True

    def write_report(run: Run) -> None:
        report, embedder = state.report, state.embedder
        finished = datetime.now(UTC)
        record = {
            "operation": NAME,
            "finished_at": finished.isoformat(),
            "environment": settings.environment,
            "docs_dir": str(docs_dir),
            "store": store_location(settings),
            "collection": collection,
            "model_id": embedder.model_id,
            "dimension": embedder.dimension,
            "chunker_version": CHUNKER_VERSION,
            "chunks": len(state.chunks),
            "added": report.added,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "deleted": report.deleted,
            "texts_embedded": state.texts_embedded,
            "seconds": round(state.seconds, 3),
            "recall_k": recall_k,
            "recall_at_k": state.recall,
            "recall_threshold": min_recall,
        }
        artifacts.mkdir(parents=True, exist_ok=True)
        path = artifacts / f"{finished:%Y%m%dT%H%M%S%fZ}-index-report.json"
        path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        run.artifact("index-report", path)

    deletes = "any" if allow else f"at most {fraction:.0%} of the index"
    steps = (
        Step("lock", f"flock {lock_path} (wait at most {timeout}s)", lock),
        Step("load-embedder", describe_embedder(settings), load),
        Step("chunk", f"chunk {files} docs under {docs_dir}", chunk),
        Step("open-store", f"open {store_location(settings)}; check that collection"
             f" {collection} is bound to this embedder's model and dimension", open_store),
        Step("embed", "embed added and updated chunks (progress on stderr); the index is not"
             " touched", embed),
        Step("write", f"upsert them, then delete stale chunks ({deletes}){would}", write),
        Step("validate", f"recall@{recall_k} of headings over their own sections"
             f" >= {min_recall:g} (heading vectors kept in {query_cache}/)", validate),
        Step("report", f"write the index report to {artifacts}/", write_report),
    )
    context = {"environment": settings.environment, "collection": collection}
    target = "qdrant-server" if settings.qdrant_url else "qdrant-local"
    return Plan(NAME, context, steps, service="vector-store", target=target)


OPERATION = Operation(
    name=NAME,
    help="Index the textbook into the vector store, incrementally, under a lock; then check"
    " recall and write an index report.",
    options=OPTIONS,
    plan=plan,
)
