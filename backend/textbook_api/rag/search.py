"""Retrieval, answer synthesis and the recall@k quality check.

numpy is imported by the recall check, the one part that uses it: the indexer imports this
module on every run, and a run with nothing to validate need not load it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from .chunking import Chunk
from .embedders import CohereChat, Embedder
from .store import require_collection

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from qdrant_client import QdrantClient  # imported when a store is opened (see store.py)

    from .query_cache import QueryVectorCache

AnswerMode = Literal["generative", "extractive"]
NO_ANSWER = "I could not find anything about this in the textbook."

_STOPWORDS = frozenset("""a an and are as at be by can do does for from how i in is it its
of on or that the this to was what when where which who why will with you your""".split())
_WORD_RE = re.compile(r"[a-z0-9]+")
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+|\n{2,}")
#: The recall check: points read per scroll page, headings scored per matrix product.
_SCAN_PAGE = 1024
_QUERY_BLOCK = 256

GENERATIVE_SYSTEM_PROMPT = (
    "You answer questions about the textbook 'Physical AI & Humanoid Robotics' using only "
    "the numbered passages given. Cite passages like [1]. If the passages do not contain "
    "the answer, say so briefly.")


@dataclass(frozen=True)
class Passage:
    title: str
    url: str
    breadcrumb: str
    score: float
    text: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def search(
    client: QdrantClient,
    collection: str,
    embedder: Embedder,
    question: str,
    top_k: int = 5,
    *,
    verify: bool = True,
) -> list[Passage]:
    """The ``top_k`` passages closest to ``question``, best first.

    ``verify`` checks that the collection exists and was built with ``embedder``
    (:class:`IndexMismatchError` / :class:`StoreError` otherwise); a caller that checked
    once at start-up with :func:`store.require_collection` may pass ``verify=False``.
    """
    if verify:
        require_collection(client, collection, embedder.model_id, embedder.dimension)
    if not question.strip() or top_k < 1:
        return []
    vector = embedder.embed_query(question)
    hits = client.query_points(collection, query=vector, limit=top_k, with_payload=True,
                               with_vectors=False).points
    passages = []
    for hit in hits:
        payload = hit.payload or {}
        passages.append(Passage(
            title=str(payload.get("title", "")), url=str(payload.get("url", "")),
            breadcrumb=str(payload.get("breadcrumb", "")), score=float(hit.score),
            text=str(payload.get("text", ""))))
    return passages


def _terms(text: str) -> set[str]:
    return {w for w in _WORD_RE.findall(text.lower()) if w not in _STOPWORDS}


def _plain(text: str) -> str:
    text = re.sub(r"^```.*?^```", " ", text, flags=re.S | re.M)
    text = re.sub(r"[*_`#>]+", "", text)
    text = re.sub(r"^\s*(?:[-+]|\d+\.)\s+", "", text, flags=re.M)
    return re.sub(r"[ \t]+", " ", text).strip()


def extractive_answer(question: str, passages: Sequence[Passage], *,
                      max_sentences: int = 3, max_passages: int = 3) -> str:
    """The sentences of the top passages sharing most terms with the question, each
    followed by the citation ``[n]`` of its passage, then the numbered sources."""
    if not passages:
        return NO_ANSWER
    used = list(passages[:max_passages])
    q_terms = _terms(question)
    scored: list[tuple[float, int, int, str]] = []
    for p_index, passage in enumerate(used):
        for s_index, sentence in enumerate(_SENTENCE_SPLIT_RE.split(_plain(passage.text))):
            sentence = " ".join(sentence.split())
            if len(sentence) < 20:
                continue
            overlap = len(q_terms & _terms(sentence))
            # Rank by shared terms, then passage rank, then position within the passage.
            score = overlap + 0.5 * passage.score - 0.01 * s_index - 0.1 * p_index
            scored.append((score, p_index, s_index, sentence))
    if not scored:
        best = [(0.0, 0, 0, " ".join(_plain(used[0].text).split())[:400])]
    else:
        best = sorted(scored, key=lambda s: -s[0])[:max_sentences]
    best.sort(key=lambda s: (s[1], s[2]))
    body = " ".join(f"{sentence} [{p_index + 1}]" for _, p_index, _, sentence in best)
    cited = sorted({p_index for _, p_index, _, _ in best})
    sources = "\n".join(f"[{i + 1}] {used[i].breadcrumb or used[i].title} — {used[i].url}"
                        for i in cited)
    return f"{body}\n\nSources:\n{sources}"


def build_prompt(question: str, passages: Sequence[Passage]) -> str:
    blocks = [f"[{i + 1}] {p.breadcrumb} ({p.url})\n{p.text}" for i, p in enumerate(passages)]
    return "Passages:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}"


def answer(question: str, passages: Sequence[Passage],
           chat: CohereChat | None = None) -> tuple[str, AnswerMode]:
    """``(text, mode)``: ``"generative"`` through Cohere when ``chat`` is given, else
    ``"extractive"``. Provider errors propagate (subclasses of ``EmbedderError``): the
    caller decides whether to fall back to ``answer(question, passages, None)``."""
    if chat is None or not passages:
        return extractive_answer(question, passages), "extractive"
    return chat.complete(GENERATIVE_SYSTEM_PROMPT, build_prompt(question, passages)), \
        "generative"


def _stored_vectors(client: QdrantClient, collection: str
                    ) -> tuple[npt.NDArray[np.float32], list[str | None]]:
    """Every stored point's unit vector and the last heading of its path, in one scan."""
    import numpy as np

    rows: list[Any] = []
    headings: list[str | None] = []
    offset: Any = None
    while True:
        points, offset = client.scroll(collection, limit=_SCAN_PAGE, offset=offset,
                                       with_vectors=True, with_payload=["heading_path"])
        for point in points:
            path = (point.payload or {}).get("heading_path") or [None]
            headings.append(path[-1])
            rows.append(point.vector)
        if offset is None:
            break
    matrix = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
    return matrix / np.clip(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12, None), \
        headings


def recall_at_k(client: QdrantClient, collection: str, embedder: Embedder,
                chunks: Sequence[Chunk], k: int = 5,
                queries: QueryVectorCache | None = None) -> float:
    """Share of headings (last heading of each chunk's path, deduplicated) whose query
    retrieves, within the top ``k``, a chunk under that same heading. 1.0 if no heading.

    The headings are embedded in one batch, through ``queries`` when given (vectors kept
    between runs). The index is read afresh every time, vectors and headings as stored,
    and ranked by exact cosine similarity (what Qdrant's exact search computes) in a few
    matrix products, rather than one search request per heading.
    """
    import numpy as np

    headings = sorted({c.heading_path[-1] for c in chunks if c.heading_path})
    if not headings:
        return 1.0
    require_collection(client, collection, embedder.model_id, embedder.dimension)
    asked = np.asarray(queries.embed_queries(headings) if queries is not None
                       else embedder.embed_queries(headings), dtype=np.float32)
    asked /= np.clip(np.linalg.norm(asked, axis=1, keepdims=True), 1e-12, None)
    stored, stored_headings = _stored_vectors(client, collection)
    if not stored_headings:
        return 0.0
    top = min(k, len(stored_headings))
    hits = 0
    for start in range(0, len(headings), _QUERY_BLOCK):
        scores = asked[start:start + _QUERY_BLOCK] @ stored.T
        best = np.argpartition(-scores, top - 1, axis=1)[:, :top]
        for heading, row in zip(headings[start:start + _QUERY_BLOCK], best):
            if any(stored_headings[index] == heading for index in row):
                hits += 1
    return hits / len(headings)
