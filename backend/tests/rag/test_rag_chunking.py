"""Chunking rules: front matter, drafts, MDX stripping, fences, token windows, ids, URLs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import write_docs
from textbook_api.rag.chunking import (
    CHUNKER_VERSION,
    chunk_document,
    load_corpus,
    slugify_anchor,
)
from textbook_api.rag.embedders import LocalEmbedder
from textbook_api.rag.errors import CorpusError

from .conftest import BOOK


def test_front_matter_title_slug_and_urls(tmp_path: Path) -> None:
    chunks = load_corpus(write_docs(tmp_path, BOOK))
    by_source = {c.source: c for c in chunks if c.ordinal == 0 and len(c.heading_path) == 1}
    assert by_source["intro.md"].title == "Introduction"
    assert by_source["intro.md"].url == "/docs/intro"
    assert by_source["ros/nodes.mdx"].url == "/docs/ros2/nodes"  # absolute slug
    assert by_source["grasping.md"].title == "Grasping"  # from the H1, no front matter
    zmp = next(c for c in chunks if c.heading_path[-1] == "Zero moment point")
    assert zmp.url == "/docs/locomotion#zero-moment-point"
    assert zmp.breadcrumb == "Locomotion › Zero moment point"
    assert zmp.heading_path == ("Locomotion", "Zero moment point")
    assert zmp.embed_text.startswith("Locomotion › Zero moment point\n")


def test_doc_ids_folders_number_prefixes_and_index(tmp_path: Path) -> None:
    write_docs(tmp_path, {
        "01-basics/02-frames.md": "# Frames\n\nCoordinate frames.\n",
        "guide/index.md": "# Guide\n\nStart here.\n",
        "guide/setup.md": "---\nid: install\n---\n# Setup\n\nInstall it.\n",
        "guide/relative.md": "---\nslug: rel-slug\n---\n# Rel\n\nRelative slug.\n",
    })
    urls = {c.source: c.url for c in load_corpus(tmp_path)}
    assert urls == {
        "01-basics/02-frames.md": "/docs/basics/frames",
        "guide/index.md": "/docs/guide",
        "guide/setup.md": "/docs/guide/install",
        "guide/relative.md": "/docs/guide/rel-slug",
    }


def test_draft_skipped_and_partials_ignored(tmp_path: Path) -> None:
    write_docs(tmp_path, {
        "a.md": "# A\n\nVisible text.\n",
        "b.md": "---\ndraft: true\n---\n# B\n\nDraft text.\n",
        "_partial.mdx": "Shared snippet.\n",
        "notes.txt": "Not a doc.\n",
    })
    chunks = load_corpus(tmp_path)
    assert {c.source for c in chunks} == {"a.md"}


@pytest.mark.parametrize("front_matter", [
    "---\ntitle: [unclosed\n---\n",
    "---\ntitle: ok\n",  # never closed
    "---\n- a list\n---\n",  # not a mapping
])
def test_malformed_front_matter_names_the_file(tmp_path: Path, front_matter: str) -> None:
    write_docs(tmp_path, {"good.md": "# Good\n\nText.\n",
                          "sub/bad.md": front_matter + "# Bad\n\nText.\n"})
    with pytest.raises(CorpusError) as info:
        load_corpus(tmp_path)
    assert info.value.path == "sub/bad.md"
    assert "sub/bad.md" in str(info.value)


def test_missing_or_empty_docs_folder(tmp_path: Path) -> None:
    with pytest.raises(CorpusError):
        load_corpus(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError):
        load_corpus(tmp_path / "empty")
    write_docs(tmp_path / "drafts", {"d.md": "---\ndraft: true\n---\n# D\n\nx\n"})
    with pytest.raises(CorpusError):
        load_corpus(tmp_path / "drafts")


MDX = """\
---
title: MDX page
---
import Tabs from '@theme/Tabs';
import {
  Foo,
  Bar,
} from '../components/Foo';
export const meta = {
  level: 2,
};

# MDX page

<Tabs groupId="x"><TabItem value="a" label="A">Kept inner text.</TabItem></Tabs>

<Figure src="/img/a.png" />

:::tip Pro tip
Admonition body stays.
:::

<!-- an html comment -->
Inline code `<div>` stays.

```tsx
import React from 'react';
export default function App() { return <Tabs>code stays</Tabs>; }
# not a heading
```

## Section two

~~~python
# a python comment, not a heading
x = 1
~~~

Closing words.
"""


def test_mdx_stripping_keeps_code_fences_intact() -> None:
    chunks = chunk_document(MDX, "page.mdx")
    text = "\n".join(c.text for c in chunks)
    assert "import Tabs from '@theme/Tabs'" not in text
    assert "Foo," not in text and "export const meta" not in text and "level: 2" not in text
    assert "Kept inner text." in text
    assert "<Tabs" not in text.split("```")[0] and "<Figure" not in text
    assert "Pro tip" in text and "Admonition body stays." in text and ":::" not in text
    assert "html comment" not in text
    assert "Inline code `<div>` stays." in text
    # the code fence is untouched: imports, JSX and '#' lines inside it survive
    assert "import React from 'react';" in text
    assert "return <Tabs>code stays</Tabs>;" in text
    assert "# not a heading" in text and "# a python comment, not a heading" in text
    headings = {c.heading_path for c in chunks}
    assert headings == {("MDX page",), ("MDX page", "Section two")}


def test_heading_hierarchy_and_h5_not_split() -> None:
    doc = ("# Book\n\nIntro.\n\n## A\n\nText A.\n\n### A1\n\nText A1.\n\n#### A1x\n\n"
           "Deep.\n\n##### Too deep\n\nStill A1x.\n\n## B\n\nText B.\n")
    chunks = chunk_document(doc, "book.md")
    paths = [c.heading_path for c in chunks]
    assert paths == [("Book",), ("Book", "A"), ("Book", "A", "A1"), ("Book", "A", "A1", "A1x"),
                     ("Book", "B")]
    assert "Still A1x." in chunks[3].text and "##### Too deep" in chunks[3].text
    assert chunks[3].breadcrumb == "Book › A › A1 › A1x"
    assert chunks[3].url == "/docs/book#a1x"


def test_anchor_slugs_like_docusaurus() -> None:
    assert slugify_anchor("Hello, World!") == "hello-world"
    assert slugify_anchor("ROS 2: nodes & topics") == "ros-2-nodes--topics"
    assert slugify_anchor("tf2 — frames (part 1)") == "tf2--frames-part-1"
    assert slugify_anchor("Über straße") == "über-straße"
    doc = ("# T\n\n## Example\n\nOne.\n\n## Example\n\nTwo.\n\n"
           "## Custom {#my-id}\n\nThree.\n\n## `code` and **bold**\n\nFour.\n")
    urls = [c.url for c in chunk_document(doc, "t.md")]
    assert urls == ["/docs/t#example", "/docs/t#example-1", "/docs/t#my-id",
                    "/docs/t#code-and-bold"]


def test_deterministic_ids_and_hashes(tmp_path: Path) -> None:
    first = load_corpus(write_docs(tmp_path, BOOK))
    second = load_corpus(tmp_path)
    assert [c.point_id for c in first] == [c.point_id for c in second]
    assert [c.content_hash for c in first] == [c.content_hash for c in second]
    assert len({c.point_id for c in first}) == len(first)
    # duplicate headings in one doc get distinct ids (ordinal runs per heading path)
    doc = "# T\n\n## Example\n\nOne.\n\n## Example\n\nTwo.\n"
    ids = [c.point_id for c in chunk_document(doc, "t.md")]
    assert len(set(ids)) == 2
    # an edit changes the hash, never the id
    edited = chunk_document(doc.replace("Two.", "Deux."), "t.md")
    assert [c.point_id for c in edited] == ids
    assert edited[1].content_hash != chunk_document(doc, "t.md")[1].content_hash
    assert CHUNKER_VERSION


def test_token_cap_and_overlap(embedder: LocalEmbedder) -> None:
    sentences = [f"Sentence number {i} explains actuator topic {i} in some detail."
                 for i in range(120)]
    paragraphs = "\n\n".join(" ".join(sentences[i:i + 6]) for i in range(0, 120, 6))
    doc = f"# Actuators\n\n## Series elastic actuators\n\n{paragraphs}\n"
    chunks = chunk_document(doc, "act.md", count_tokens=embedder.count_tokens,
                            max_tokens=128, overlap_tokens=24)
    assert len(chunks) > 5
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        # the embedded form (breadcrumb + text) plus [CLS]/[SEP] fits the window
        assert embedder.count_tokens(chunk.embed_text) + 2 <= 128
    for before, after in zip(chunks, chunks[1:]):
        first_sentence = re.split(r"(?<=\.)\s+", after.text)[0]
        assert first_sentence in before.text, "consecutive chunks share an overlap"
    text = " ".join(c.text for c in chunks)
    for sentence in sentences:
        assert sentence in text, "nothing is lost"


def test_giant_sentence_and_code_block_are_cut(embedder: LocalEmbedder) -> None:
    words = " ".join(f"word{i}" for i in range(600))
    code = "```python\n" + "\n".join(f"x_{i} = {i}" for i in range(300)) + "\n```"
    doc = f"# Big\n\n{words}\n\n{code}\n"
    chunks = chunk_document(doc, "big.md", count_tokens=embedder.count_tokens,
                            max_tokens=256)
    assert all(embedder.count_tokens(c.embed_text) + 2 <= 256 for c in chunks)
    assert "word599" in " ".join(c.text for c in chunks)
    assert "x_299 = 299" in " ".join(c.text for c in chunks)
