"""The built textbook site, served compressed and with cache headers fit for each file.

- HTML, JavaScript, CSS, JSON, SVG, XML and text go out gzip-compressed to clients that accept
  it (`Vary: Accept-Encoding` either way). Each file is compressed once per version (path,
  modification time, size) and kept in memory; a release switch changes the path's target, so
  the new files are compressed afresh. The compressed response carries the file's ETag made weak
  (the bytes differ, the content is the same), so conditional requests still answer 304.
- Docusaurus names everything under `/assets/` by its content hash: those answer
  `Cache-Control: public, max-age=31536000, immutable`. Everything else (the HTML pages, the
  sitemap, the favicon) answers `no-cache`: browsers revalidate with the ETag, so a new release
  shows at once.
"""

from __future__ import annotations

import gzip
import os
from functools import lru_cache
from pathlib import Path

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

HASHED_ASSETS_PREFIX = "/assets/"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
COMPRESSIBLE_TYPES = frozenset(
    {
        "text/html",
        "text/css",
        "text/javascript",
        "application/javascript",
        "application/json",
        "application/manifest+json",
        "application/xml",
        "text/xml",
        "text/plain",
        "image/svg+xml",
    }
)
GZIP_LEVEL = 9  # once per file version, so the smallest output is worth the time
COMPRESSED_FILES_KEPT = 512  # a release of the textbook holds about 100 compressible files


@lru_cache(maxsize=COMPRESSED_FILES_KEPT)
def gzipped(path: str, mtime_ns: int, size: int) -> bytes:
    """The file's bytes, gzip-compressed (the version fields key the cache; mtime 0: stable)."""
    del mtime_ns, size
    return gzip.compress(Path(path).read_bytes(), compresslevel=GZIP_LEVEL, mtime=0)


def accepts_gzip(request_headers: Headers) -> bool:
    """Whether `Accept-Encoding` allows gzip (named, or `*`, with a q-value above 0)."""
    weights: dict[str, float] = {}
    for item in request_headers.get("accept-encoding", "").split(","):
        coding, _, params = item.strip().partition(";")
        weight = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value)
            except ValueError:
                weight = 0.0
        if coding:
            weights[coding.strip().lower()] = weight
    return weights.get("gzip", weights.get("*", 0.0)) > 0


def is_compressible(response: Response) -> bool:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type in COMPRESSIBLE_TYPES


def set_cache_headers(response: FileResponse, scope: Scope) -> None:
    """Cache-Control by kind of file (a 404 page is never immutable); Vary when compressible."""
    hashed = scope["path"].startswith(HASHED_ASSETS_PREFIX) and response.status_code == 200
    response.headers["cache-control"] = IMMUTABLE if hashed else REVALIDATE
    if is_compressible(response):
        response.headers["vary"] = "Accept-Encoding"


class SiteFiles(StaticFiles):
    """StaticFiles (html mode) with gzip and cache headers; see the module docstring."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        # StaticFiles's own, with the headers set before the 304 check (a 304 copies them).
        request_headers = Headers(scope=scope)
        response = FileResponse(full_path, status_code=status_code, stat_result=stat_result)
        set_cache_headers(response, scope)
        if self.is_not_modified(response.headers, request_headers):
            not_modified = NotModifiedResponse(response.headers)
            if is_compressible(response) and accepts_gzip(request_headers):
                not_modified.headers["etag"] = weak(response.headers["etag"])
            return not_modified
        return response

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if not isinstance(response, FileResponse) or response.stat_result is None:
            return response  # a 304, a redirect
        set_cache_headers(response, scope)  # again for the 404 page, made without file_response
        request_headers = Headers(scope=scope)
        if (
            is_compressible(response)
            and accepts_gzip(request_headers)
            and "range" not in request_headers
        ):
            return await self.compressed(response, response.stat_result, scope)
        return response

    @staticmethod
    async def compressed(
        response: FileResponse, stat_result: os.stat_result, scope: Scope
    ) -> Response:
        """The same file, gzip-compressed; the file response itself when gzip saves nothing."""
        body = await anyio.to_thread.run_sync(
            gzipped, str(response.path), stat_result.st_mtime_ns, stat_result.st_size
        )
        if len(body) >= stat_result.st_size:
            return response
        headers = {
            name: value
            for name, value in response.headers.items()
            if name not in ("content-length", "etag")
        }
        headers["content-encoding"] = "gzip"
        headers["content-length"] = str(len(body))
        headers["etag"] = weak(response.headers["etag"])
        is_head = scope["method"] == "HEAD"
        return Response(b"" if is_head else body, response.status_code, headers=headers)


def weak(etag: str) -> str:
    """The weak form of an entity tag (the gzip variant of the same content)."""
    return etag if etag.startswith("W/") else f"W/{etag}"
