"""The built site served by the API: gzip for text files, cache headers by kind of file."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.datastructures import Headers

from textbook_api.config import get_settings
from textbook_api.main import create_app
from textbook_api.site import IMMUTABLE, REVALIDATE, accepts_gzip

GZIP = {"Accept-Encoding": "gzip"}
IDENTITY = {"Accept-Encoding": "identity"}

HTML = "<!doctype html><html><body>" + "<p>Forward kinematics maps joints.</p>" * 200
SCRIPT = "function f(a){return a*2}" * 400
STYLE = ".markdown a{text-decoration:underline}" * 300
# Not compressible as far as the server is concerned, whatever its bytes.
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


def write_release(root: Path, home: str) -> Path:
    """A small built site: pages, hashed assets, an image and a 404 page."""
    files: dict[str, str | bytes] = {
        "index.html": home,
        "docs/kinematics/index.html": HTML,
        "404.html": "<!doctype html><title>Not found</title>" + "<p>missing</p>" * 50,
        "assets/js/main.3f9a1c.js": SCRIPT,
        "assets/css/styles.77b2e0.css": STYLE,
        "img/diagram.png": PNG,
    }
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """SITE_DIR: a `current` symlink to a release, as the local target lays it out."""
    release = write_release(tmp_path / "r1", HTML)
    current = tmp_path / "current"
    current.symlink_to(release)
    monkeypatch.setenv("SITE_DIR", str(current))
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield current
    get_settings.cache_clear()


@pytest.fixture
def client(site: Path) -> TestClient:
    return TestClient(create_app())


def raw_get(client: TestClient, url: str, headers: dict[str, str]) -> tuple[Headers, bytes]:
    """The response headers and the body bytes as sent (not decoded by the client)."""
    with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        return Headers(dict(response.headers)), b"".join(response.iter_raw())


@pytest.mark.parametrize(
    ("url", "relative", "media_type"),
    [
        ("/", "index.html", "text/html"),
        ("/docs/kinematics/", "docs/kinematics/index.html", "text/html"),
        ("/assets/js/main.3f9a1c.js", "assets/js/main.3f9a1c.js", "javascript"),
        ("/assets/css/styles.77b2e0.css", "assets/css/styles.77b2e0.css", "text/css"),
    ],
)
def test_text_files_go_out_gzipped_and_unzip_to_the_file(
    client: TestClient, site: Path, url: str, relative: str, media_type: str
) -> None:
    headers, body = raw_get(client, url, GZIP)
    original = (site / relative).read_bytes()
    assert headers["content-encoding"] == "gzip"
    assert media_type in headers["content-type"]
    assert headers["vary"] == "Accept-Encoding"
    assert int(headers["content-length"]) == len(body) < len(original)
    assert gzip.decompress(body) == original


def test_without_gzip_in_accept_encoding_the_file_goes_out_as_is(
    client: TestClient, site: Path
) -> None:
    headers, body = raw_get(client, "/assets/js/main.3f9a1c.js", IDENTITY)
    assert "content-encoding" not in headers
    assert headers["vary"] == "Accept-Encoding"
    assert body == (site / "assets/js/main.3f9a1c.js").read_bytes()


def test_an_image_is_never_compressed(client: TestClient, site: Path) -> None:
    headers, body = raw_get(client, "/img/diagram.png", GZIP)
    assert "content-encoding" not in headers
    assert "vary" not in headers
    assert body == PNG


def test_hashed_assets_are_cached_for_a_year_and_pages_revalidate(client: TestClient) -> None:
    assert IMMUTABLE == "public, max-age=31536000, immutable"
    for url in ("/assets/js/main.3f9a1c.js", "/assets/css/styles.77b2e0.css"):
        assert client.get(url, headers=GZIP).headers["cache-control"] == IMMUTABLE
    for url in ("/", "/docs/kinematics/", "/img/diagram.png"):
        assert client.get(url, headers=GZIP).headers["cache-control"] == REVALIDATE


def test_a_missing_asset_is_a_404_page_that_is_not_cached_for_a_year(client: TestClient) -> None:
    response = client.get("/assets/js/main.000000.js", headers=GZIP)
    assert response.status_code == 404
    assert "Not found" in response.text
    assert response.headers["cache-control"] == REVALIDATE


def test_the_gzip_variant_has_a_weak_etag_and_revalidates_to_304(client: TestClient) -> None:
    plain = client.get("/", headers=IDENTITY).headers["etag"]
    compressed = client.get("/", headers=GZIP)
    assert compressed.headers["etag"] == f"W/{plain}"

    again = client.get("/", headers={**GZIP, "If-None-Match": compressed.headers["etag"]})
    assert again.status_code == 304
    assert again.headers["etag"] == compressed.headers["etag"]
    assert again.headers["cache-control"] == REVALIDATE
    assert again.headers["vary"] == "Accept-Encoding"


def test_head_sends_the_gzip_headers_without_a_body(client: TestClient) -> None:
    compressed_length = client.get("/", headers=GZIP).headers["content-length"]
    response = client.head("/", headers=GZIP)
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["content-length"] == compressed_length
    assert response.content == b""


def test_a_release_switch_serves_the_new_files_compressed(client: TestClient, site: Path) -> None:
    raw_get(client, "/", GZIP)  # the first release's page, compressed and kept
    new_home = HTML.replace("Forward", "Inverse")
    release = write_release(site.parent / "r2", new_home)
    site.unlink()
    site.symlink_to(release)

    _, body = raw_get(client, "/", GZIP)
    assert gzip.decompress(body) == new_home.encode()


@pytest.mark.parametrize(
    ("accept_encoding", "expected"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.5", True),
        ("*", True),
        ("", False),
        ("identity", False),
        ("br", False),
        ("gzip;q=0", False),
        ("*;q=0.1, gzip;q=0", False),
        ("gzip;q=bad", False),
    ],
)
def test_accepts_gzip_reads_q_values(accept_encoding: str, expected: bool) -> None:
    assert accepts_gzip(Headers({"accept-encoding": accept_encoding})) is expected


def test_a_file_rewritten_in_place_is_compressed_afresh(client: TestClient, site: Path) -> None:
    raw_get(client, "/", GZIP)
    rewritten = HTML + "<p>Appendix</p>"
    (site / "index.html").write_text(rewritten, encoding="utf-8")

    _, body = raw_get(client, "/", GZIP)
    assert gzip.decompress(body) == rewritten.encode()
