"""Turn the Docusaurus docs folder into retrieval chunks.

Rules (each one is tested in ``tests/rag/test_chunking.py``):

* ``.md`` and ``.mdx`` files are read recursively, in sorted order.
* YAML front matter gives ``title``, ``slug``, ``id`` and ``sidebar_position``; a file with
  ``draft: true`` is skipped. Malformed front matter is an error (:class:`CorpusError`
  naming the file): we fail rather than silently index half a book. A folder without any
  doc is an error too.
* MDX ``import``/``export`` statements, JSX/HTML tags (their inner text is kept), HTML and
  MDX comments and admonition fences (``:::note``) are stripped, never inside code fences.
* Text is split along headings ``#`` to ``####`` (``#`` lines inside ``````` or ``~~~``
  fences are code, not headings), then each section is cut into chunks whose embedded form
  (breadcrumb + text) fits ``max_tokens`` word pieces, consecutive chunks of a section
  sharing about ``overlap_tokens`` tokens.
* ``point_id`` is a uuid5 of (source path, heading path, ordinal), so re-running the
  chunker on the same corpus yields the same ids; ``content_hash`` covers everything that
  is stored with the point plus :data:`CHUNKER_VERSION`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import Any
from urllib.parse import urljoin, urlsplit

import yaml

from .errors import CorpusError

#: Bump when the chunking rules change: every chunk's hash changes, so a sync re-embeds all.
CHUNKER_VERSION = "1"
#: Fixed namespace of the chunks' uuid5 point ids (never change it: ids would all move).
POINT_NAMESPACE = uuid.UUID("6f1c2a57-3f5e-4d8a-9c41-7d0b5e2a9b13")
#: The embedding window of all-MiniLM-L6-v2 in word-piece tokens.
DEFAULT_MAX_TOKENS = 256
DEFAULT_OVERLAP_TOKENS = 32
#: Tokens reserved for the model's special tokens ([CLS], [SEP]) and the breadcrumb line break.
SPECIAL_TOKENS_RESERVE = 3
BREADCRUMB_SEPARATOR = " › "
DOC_EXTENSIONS = (".md", ".mdx")
DOCS_ROUTE = "/docs"

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class Chunk:
    """One retrievable piece of a doc, with everything stored in its point payload."""

    point_id: str
    source: str
    doc_id: str
    heading_path: tuple[str, ...]
    ordinal: int
    title: str
    breadcrumb: str
    url: str
    text: str
    content_hash: str

    @property
    def embed_text(self) -> str:
        """What is embedded: the breadcrumb gives the section's context to the model."""
        return f"{self.breadcrumb}\n{self.text}"


def approx_token_count(text: str) -> int:
    """A tokenizer-free estimate (words and punctuation marks) for callers without a model."""
    return len(re.findall(r"\w+|[^\w\s]", text))


# --------------------------------------------------------------------------- front matter

_FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*(?:\r?\n|\Z)", re.S | re.M)


def split_front_matter(raw: str, path: PurePath | str) -> tuple[dict[str, Any], str]:
    """Return ``(metadata, body)``; raise :class:`CorpusError` on malformed front matter."""
    raw = raw.lstrip("\ufeff")
    if not re.match(r"\A---[ \t]*\r?\n", raw):
        return {}, raw
    match = _FRONT_MATTER_RE.match(raw)
    if match is None:
        raise CorpusError("front matter opened with '---' is never closed", path)
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        raise CorpusError(f"malformed YAML front matter{where}: {exc}", path) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CorpusError("front matter must be a YAML mapping", path)
    for key in ("title", "slug", "id"):
        if key in data and data[key] is not None and not isinstance(data[key], (str, int)):
            raise CorpusError(f"front matter key '{key}' must be a string", path)
    return data, raw[match.end():]


# --------------------------------------------------------------------------- MDX stripping

_FENCE_RE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
_TAG_RE = re.compile(r"</?[A-Za-z][\w.:-]*(?:\s+[^<>]*?)?\s*/?>")
_HTML_COMMENT_RE = re.compile(r"<!--.*?-->", re.S)
_MDX_COMMENT_RE = re.compile(r"\{/\*.*?\*/\}", re.S)
_ADMONITION_RE = re.compile(r"^[ \t]*:::\s*([A-Za-z]*)\s*(.*)$")
_INLINE_CODE_RE = re.compile(r"(`+)(.+?)\1")


def _iter_fenced(lines: Sequence[str]) -> Iterator[tuple[str, bool]]:
    """Yield ``(line, in_code)``: fence delimiters and their content are code."""
    fence: str | None = None
    for line in lines:
        match = _FENCE_RE.match(line)
        if fence is None:
            if match:
                fence = match.group(1)
                yield line, True
                continue
            yield line, False
        else:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
                    and line.strip() == match.group(1):
                fence = None
            yield line, True


def _strip_tags_outside_inline_code(line: str) -> str:
    parts: list[str] = []
    pos = 0
    for match in _INLINE_CODE_RE.finditer(line):
        parts.append(_TAG_RE.sub("", line[pos:match.start()]))
        parts.append(match.group(0))
        pos = match.end()
    parts.append(_TAG_RE.sub("", line[pos:]))
    return "".join(parts)


def _statement_done(buffer: str, keyword: str) -> bool:
    depth = sum(buffer.count(c) for c in "({[") - sum(buffer.count(c) for c in ")}]")
    if depth > 0:
        return False
    if keyword == "import":
        stripped = buffer.strip()
        return bool(re.search(r"""from\s+['"][^'"]+['"]\s*;?\s*$""", stripped)
                    or re.match(r"""import\s+['"][^'"]+['"]\s*;?\s*$""", stripped)
                    or stripped.endswith(";"))
    return True


def strip_mdx(body: str) -> str:
    """Remove MDX-only syntax outside code fences, keeping the readable text."""
    out: list[str] = []
    pending: list[str] = []  # lines of a multi-line import/export statement
    pending_kw = ""
    prose: list[str] = []

    def flush_prose() -> None:
        if not prose:
            return
        text = "\n".join(prose)
        text = _HTML_COMMENT_RE.sub("", text)
        text = _MDX_COMMENT_RE.sub("", text)
        for line in text.split("\n"):
            admonition = _ADMONITION_RE.match(line)
            if admonition:
                if admonition.group(2):
                    out.append(admonition.group(2).strip())
                continue
            out.append(_strip_tags_outside_inline_code(line))
        prose.clear()

    for line, in_code in _iter_fenced(body.splitlines()):
        if in_code:
            flush_prose()
            out.append(line)
            continue
        if pending:
            pending.append(line)
            if _statement_done("\n".join(pending), pending_kw):
                pending.clear()
            continue
        statement = re.match(r"^(import|export)\s", line)
        if statement:
            if not _statement_done(line, statement.group(1)):
                pending.append(line)
                pending_kw = statement.group(1)
            continue
        prose.append(line)
    flush_prose()
    return "\n".join(out)


# --------------------------------------------------------------------------- headings, anchors

_HEADING_RE = re.compile(r"^[ \t]{0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_EXPLICIT_ID_RE = re.compile(r"\s*\{#([^}\s]+)\}\s*$")
_LINK_RE = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS_RE = re.compile(r"(\*{1,3}|_{1,3})(\S(?:.*?\S)?)\1")


def clean_inline(text: str) -> str:
    """Plain text of inline Markdown (links, emphasis, code spans, tags)."""
    text = _LINK_RE.sub(r"\1", text)
    text = _INLINE_CODE_RE.sub(r"\2", text)
    text = _EMPHASIS_RE.sub(r"\2", text)
    text = _TAG_RE.sub("", text)
    return re.sub(r"\s+", " ", text).strip()


def slugify_anchor(heading: str) -> str:
    """Anchor of a heading as Docusaurus (github-slugger) makes it.

    Lowercase; characters other than letters, marks, digits, ``_``, ``-`` and spaces are
    dropped; each space becomes ``-`` (runs are not collapsed, as in github-slugger).
    """
    kept = []
    for char in heading.strip().lower():
        category = unicodedata.category(char)
        if char in " -_" or category[0] in "LMN":
            kept.append(char)
    return "".join(kept).replace(" ", "-")


class _AnchorSlugger:
    """Deduplicate anchors within one page the way github-slugger does (``x``, ``x-1``...)."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def slug(self, heading: str, explicit: str | None = None) -> str:
        base = explicit if explicit else slugify_anchor(heading)
        slug = base
        if explicit is None and base in self._seen:
            count = self._seen[base]
            while True:
                count += 1
                slug = f"{base}-{count - 1}" if count > 1 else base
                if slug not in self._seen:
                    break
            self._seen[base] = count
        self._seen.setdefault(slug, 1)
        return slug


@dataclass
class _Section:
    headings: tuple[str, ...]
    anchor: str
    lines: list[str]
    top_level: int = 0  # level of the outermost heading of the path (0: before any heading)


def _split_sections(body: str, title: str) -> list[_Section]:
    """Sections of a body; each heading path starts with the chapter.

    The chapter is the doc's H1 when the section sits under one, else the doc title.
    """
    slugger = _AnchorSlugger()
    stack: list[tuple[int, str]] = []
    sections = [_Section((), "", [])]
    for line, in_code in _iter_fenced(body.splitlines()):
        match = None if in_code else _HEADING_RE.match(line)
        if match is None or len(match.group(1)) > 4:
            sections[-1].lines.append(line)
            continue
        level = len(match.group(1))
        raw = match.group(2)
        explicit_match = _EXPLICIT_ID_RE.search(raw)
        explicit = explicit_match.group(1) if explicit_match else None
        if explicit_match:
            raw = raw[:explicit_match.start()]
        text = clean_inline(raw) or "Untitled"
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, text))
        anchor = "" if level == 1 else slugger.slug(text, explicit)
        sections.append(_Section(tuple(h for _, h in stack), anchor, [], stack[0][0]))
    for section in sections:
        if section.top_level != 1:
            section.headings = (title, *section.headings)
    return sections


# --------------------------------------------------------------------------- token windows

_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


@dataclass
class _Unit:
    text: str
    sep: str  # separator before this unit when joined to a previous one
    tokens: int


def _blocks(lines: Sequence[str]) -> list[tuple[str, bool]]:
    """Paragraphs and code fences of a section: ``(text, is_code)``."""
    blocks: list[tuple[str, bool]] = []
    current: list[str] = []
    code: list[str] = []
    for line, in_code in _iter_fenced(lines):
        if in_code:
            if current:
                blocks.append(("\n".join(current), False))
                current = []
            code.append(line)
            continue
        if code:
            blocks.append(("\n".join(code), True))
            code = []
        if line.strip():
            current.append(line.rstrip())
        elif current:
            blocks.append(("\n".join(current), False))
            current = []
    if code:
        blocks.append(("\n".join(code), True))
    if current:
        blocks.append(("\n".join(current), False))
    return blocks


def _split_words(text: str, budget: int, count: TokenCounter) -> list[str]:
    pieces: list[str] = []
    words: list[str] = []
    used = 0
    for word in text.split(" "):
        cost = count(word)
        if cost > budget:  # one giant "word": cut by characters
            step = max(1, len(word) * budget // max(cost, 1))
            for start in range(0, len(word), step):
                pieces.append(word[start:start + step])
            continue
        if words and used + cost > budget:
            pieces.append(" ".join(words))
            words, used = [], 0
        words.append(word)
        used += cost
    if words:
        pieces.append(" ".join(words))
    return pieces


def _units(lines: Sequence[str], budget: int, count: TokenCounter) -> list[_Unit]:
    """Smallest pieces a chunk is made of: sentences of prose (so the overlap between
    chunks is whole sentences), whole code blocks (by lines when too long)."""
    units: list[_Unit] = []

    def add(part: str, sep: str) -> None:
        tokens = count(part)
        if tokens <= budget:
            units.append(_Unit(part, sep, tokens))
            return
        for k, piece in enumerate(_split_words(part, budget, count)):
            units.append(_Unit(piece, sep if k == 0 else " ", count(piece)))

    for index, (block, is_code) in enumerate(_blocks(lines)):
        first_sep = "\n\n" if index else ""
        if is_code:
            if count(block) <= budget:
                units.append(_Unit(block, first_sep, count(block)))
            else:
                for j, line in enumerate(block.split("\n")):
                    add(line, first_sep if j == 0 else "\n")
            continue
        first = True
        for j, line in enumerate(block.split("\n")):
            for k, sentence in enumerate(_SENTENCE_RE.split(line)):
                add(sentence, first_sep if first else ("\n" if k == 0 else " "))
                first = False
    return units


def _pack(units: Sequence[_Unit], budget: int, overlap: int) -> list[str]:
    chunks: list[str] = []
    current: list[_Unit] = []
    used = 0
    for unit in units:
        if current and used + unit.tokens > budget:
            chunks.append(_join(current))
            carried: list[_Unit] = []
            carried_tokens = 0
            for prev in reversed(current):
                if carried_tokens + prev.tokens > overlap or \
                        carried_tokens + prev.tokens + unit.tokens > budget:
                    break
                carried.insert(0, prev)
                carried_tokens += prev.tokens
            current, used = carried, carried_tokens
        current.append(unit)
        used += unit.tokens
    if current:
        chunks.append(_join(current))
    return chunks


def _join(units: Sequence[_Unit]) -> str:
    text = "".join((u.sep if i else "") + u.text for i, u in enumerate(units))
    return text.strip()


# --------------------------------------------------------------------------- docs and URLs

# Docusaurus's DefaultNumberPrefixParser: "01-intro" -> "intro", but date- and version-like
# names ("2021-01-report", "7.0-notes") keep their digits.
_NUMBER_PREFIX_RE = re.compile(r"^\d+\s*[-_.]+\s*(?P<rest>[^-_.\s].*)$")
_IGNORED_PREFIX_RE = re.compile(r"^\d+[-_.]\d+")


def _strip_number_prefix(name: str) -> str:
    if _IGNORED_PREFIX_RE.match(name):
        return name
    match = _NUMBER_PREFIX_RE.match(name)
    return match.group("rest") if match else name


def doc_slug(rel_path: PurePosixPath, meta: Mapping[str, Any]) -> str:
    """The slug Docusaurus gives a doc (plugin-content-docs ``getSlug``, default options).

    The one implementation of doc routes: the indexer's chunk URLs and build-frontend's
    check of the rendered pages both come from here. An absolute ``slug:`` wins; a folder's
    ``index``/``README``/same-named doc is the folder's page; otherwise a relative ``slug:``
    or the id is resolved against the folder. Number prefixes (``01-``) are stripped from
    the file and its folders unless ``parse_number_prefixes: false``.
    """
    numbered = meta.get("parse_number_prefixes", True) is not False
    strip = _strip_number_prefix if numbered else str
    folders = [strip(part) for part in rel_path.parent.parts]
    folder_slug = "/" + "".join(f"{part}/" for part in folders)
    slug = meta.get("slug")
    if slug is not None and str(slug).startswith("/"):
        return str(slug)
    parents = [part.lower() for part in reversed(rel_path.parent.parts)]
    if slug is None and rel_path.stem.lower() in ("index", "readme", *parents[:1]):
        return folder_slug
    base_id = str(meta["id"]) if meta.get("id") is not None else strip(rel_path.stem)
    return urlsplit(urljoin("http://docs" + folder_slug, str(slug) if slug else base_id)).path


def doc_route(rel_path: PurePosixPath, meta: Mapping[str, Any]) -> tuple[str, str]:
    """``(doc_id, url_path)`` of a doc as Docusaurus derives them (url without a trailing /)."""
    numbered = meta.get("parse_number_prefixes", True) is not False
    strip = _strip_number_prefix if numbered else str
    base_id = str(meta["id"]) if meta.get("id") is not None else strip(rel_path.stem)
    doc_id = "/".join([*(strip(part) for part in rel_path.parent.parts), base_id])
    path = re.sub(r"/+", "/", doc_slug(rel_path, meta)).rstrip("/")
    return doc_id, DOCS_ROUTE + path


def make_point_id(source: str, heading_path: Sequence[str], ordinal: int) -> str:
    key = "\x1f".join([source, *heading_path, str(ordinal)])
    return str(uuid.uuid5(POINT_NAMESPACE, key))


def make_content_hash(text: str, *, breadcrumb: str, url: str, title: str) -> str:
    digest = hashlib.sha256()
    for part in (CHUNKER_VERSION, title, breadcrumb, url, text):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def chunk_document(
    raw: str,
    rel_path: PurePosixPath | str,
    *,
    count_tokens: TokenCounter = approx_token_count,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> list[Chunk]:
    """Chunks of one document (``[]`` for a draft). ``rel_path`` is relative to docs root."""
    rel = PurePosixPath(rel_path)
    meta, body = split_front_matter(raw, rel)
    if meta.get("draft") is True:
        return []
    body = strip_mdx(body)
    doc_id, base_url = doc_route(rel, meta)
    h1 = next((m.group(2) for line, code in _iter_fenced(body.splitlines())
               if not code and (m := _HEADING_RE.match(line)) and len(m.group(1)) == 1), None)
    title = str(meta["title"]) if meta.get("title") else (
        clean_inline(h1) if h1 else rel.stem.replace("-", " ").replace("_", " ").title())
    source = str(rel)
    chunks: list[Chunk] = []
    ordinals: dict[tuple[str, ...], int] = {}
    for section in _split_sections(body, title):
        if not any(line.strip() for line in section.lines):
            continue
        breadcrumb = BREADCRUMB_SEPARATOR.join(section.headings)
        budget = max_tokens - SPECIAL_TOKENS_RESERVE - count_tokens(breadcrumb)
        if budget < 16:
            raise CorpusError(f"heading path too long for a {max_tokens}-token window: "
                              f"{breadcrumb!r}", rel)
        url = f"{base_url}#{section.anchor}" if section.anchor else base_url
        units = _units(section.lines, budget, count_tokens)
        for text in _pack(units, budget, min(overlap_tokens, budget // 2)):
            ordinal = ordinals.get(section.headings, 0)
            ordinals[section.headings] = ordinal + 1
            chunks.append(Chunk(
                point_id=make_point_id(source, section.headings, ordinal),
                source=source,
                doc_id=doc_id,
                heading_path=section.headings,
                ordinal=ordinal,
                title=title,
                breadcrumb=breadcrumb,
                url=url,
                text=text,
                content_hash=make_content_hash(text, breadcrumb=breadcrumb, url=url,
                                               title=title),
            ))
    return chunks


def iter_doc_files(docs_dir: Path) -> list[Path]:
    """The docs Docusaurus renders: ``**/*.{md,mdx}`` without partials (a file or folder
    named ``_*``) and hidden files or folders (``.*``), which its globs leave out."""
    return sorted(p for p in docs_dir.rglob("*")
                  if p.suffix in DOC_EXTENSIONS and p.is_file()
                  and not any(part.startswith((".", "_")) for part in
                              p.relative_to(docs_dir).parts))


def load_corpus(
    docs_dir: Path | str,
    *,
    count_tokens: TokenCounter = approx_token_count,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> list[Chunk]:
    """Chunks of every non-draft doc under ``docs_dir``.

    Raise :class:`CorpusError` when the folder is missing, holds no doc, or a doc's front
    matter is malformed (we fail instead of skipping, so a typo never shrinks the index).
    Files and folders whose name starts with ``_`` or ``.`` are partials, not docs
    (Docusaurus ignores them too).
    """
    root = Path(docs_dir)
    if not root.is_dir():
        raise CorpusError("docs folder does not exist", root)
    files = iter_doc_files(root)
    if not files:
        raise CorpusError("docs folder holds no .md or .mdx file", root)
    chunks: list[Chunk] = []
    for path in files:
        rel = PurePosixPath(path.relative_to(root).as_posix())
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CorpusError(f"cannot read: {exc}", rel) from None
        chunks.extend(chunk_document(raw, rel, count_tokens=count_tokens,
                                     max_tokens=max_tokens, overlap_tokens=overlap_tokens))
    if not chunks:
        raise CorpusError("docs folder holds no indexable text (all drafts or empty)", root)
    seen: dict[str, Chunk] = {}
    for chunk in chunks:
        if chunk.point_id in seen:  # only possible if two files map to one source path
            raise CorpusError(f"duplicate chunk id with {seen[chunk.point_id].source}",
                              chunk.source)
        seen[chunk.point_id] = chunk
    return chunks
