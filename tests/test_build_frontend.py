"""build-frontend with the real npm and the real Docusaurus build, on copies of frontend/.

A build takes tens of seconds, so the good build runs once per module into a copy of the site
(its node_modules entries linked from the real frontend/, its own webpack cache), and every
check of the built tree reads that one build. Under CI=true a missing node or npm fails these
tests; elsewhere they skip.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree  # nosec B405: parses the sitemap our build wrote
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest

from conftest import ROOT, unavailable
from pipeline import cli
from pipeline.errors import ExitCode
from pipeline.locks import file_lock
from pipeline.operations import build_frontend
from pipeline.operations.build_frontend import (
    install_state,
    npm_folder_lock,
    provide_node_modules,
)
from textbook_api.config import Settings
from textbook_api.rag.chunking import doc_slug, load_corpus

# Under pytest-xdist one worker runs this module and test_vercel's `vercel build` test: they
# share the one production build (`built`) and the real node_modules (`npm ci` at most once).
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("site-build")]

FRONTEND = ROOT / "frontend"
COPY_IGNORE = shutil.ignore_patterns("node_modules", "build", ".docusaurus", "artifacts")


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def run_operation(env: dict[str, str], *args: str) -> Result:
    """`build-frontend ARGS` in this process (as the invoke door runs it), output captured."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DATABASE_URL", raising=False)
        patch.delenv("ENVIRONMENT", raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["build-frontend", *args])
    return Result(code, out.getvalue(), err.getvalue())


def require_toolchain() -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        unavailable(f"{' and '.join(missing)} not on PATH: install Node.js 20 and npm")


def real_node_modules() -> Path:
    """frontend/node_modules matching the lockfile (from the cache, or `npm ci` there once)."""
    with npm_folder_lock(FRONTEND):
        provide_node_modules(FRONTEND, Settings().node_modules_cache, lambda: subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=FRONTEND, check=True,
            stdout=subprocess.DEVNULL,
        ))
    return FRONTEND / "node_modules"


def site_copy(folder: Path) -> Path:
    """A copy of frontend/ without its build; node_modules entries link to the real ones."""
    copy = folder / "frontend"
    shutil.copytree(FRONTEND, copy, ignore=COPY_IGNORE)
    modules = copy / "node_modules"
    modules.mkdir()
    for entry in real_node_modules().iterdir():
        if entry.name != ".cache":  # the copy keeps its own webpack cache
            (modules / entry.name).symlink_to(entry)
    return copy


def recompute_digest(root: Path) -> tuple[str, int]:
    """The tree digest, written out independently: sorted relative paths, NUL, file bytes."""
    hasher = hashlib.sha256()
    size = 0
    for relative in sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()):
        data = (root / relative).read_bytes()
        hasher.update(relative.encode() + b"\0" + data)
        size += len(data)
    return hasher.hexdigest(), size


@pytest.fixture(scope="module")
def toolchain() -> None:
    require_toolchain()


@dataclass(frozen=True)
class Built:
    frontend: Path
    site: Path  # FRONTEND_BUILD_DIR, outside the frontend folder
    data_dir: Path
    result: Result


#: Docs added to the one built site copy: every kind of route Docusaurus derives (folder
#: indexes, numbered prefixes, nested folders, `slug:`, `id:`) and two that it does not render.
ROUTE_CASES = {
    "route-cases/index.md": "# Route cases\n\nA folder's index page.\n",
    "route-cases/01-basics/README.md": "# Basics\n\nA README is its folder's page.\n",
    "route-cases/01-basics/02-setup.mdx": "# Setup\n\nNumbered prefixes are stripped.\n",
    "route-cases/guide/guide.md": "# Guide\n\nA doc named as its folder is its page.\n",
    "route-cases/guide/page.md": "---\nslug: renamed\n---\n# Page\n\nA relative slug.\n",
    "route-cases/guide/deep/moved.md":
        "---\nslug: /moved-elsewhere\n---\n# Moved\n\nAn absolute slug.\n",
    "route-cases/guide/deep/03-nested.md": "# Nested\n\nTwo folders down.\n",
    "route-cases/2021-01-report.md": "# Report\n\nA date-like prefix is kept.\n",
    "route-cases/04-kept.md":
        "---\nparse_number_prefixes: false\n---\n# Kept\n\nPrefix parsing is off.\n",
    "route-cases/named.md": "---\nid: custom-id\n---\n# Named\n\nAn id of its own.\n",
    "route-cases/_partial.md": "A partial, never a page.\n",
    "route-cases/unfinished.md": "---\ndraft: true\n---\n# Draft\n\nNot in a build.\n",
}


_PRODUCTION_BUILD: list[Built] = []


def production_build(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The one production build of a site copy (with ROUTE_CASES) per test process: this
    module's checks and test_vercel's `vercel build` read it, none changes it."""
    if _PRODUCTION_BUILD:
        return _PRODUCTION_BUILD[0]
    require_toolchain()
    folder = tmp_path_factory.mktemp("build-frontend")
    frontend = site_copy(folder)
    for name, text in ROUTE_CASES.items():
        (frontend / "docs" / name).parent.mkdir(parents=True, exist_ok=True)
        (frontend / "docs" / name).write_text(text)
    data_dir = folder / "data"
    site = folder / "site"
    env = {"FRONTEND_DIR": str(frontend), "DATA_DIR": str(data_dir),
           "FRONTEND_BUILD_DIR": str(site)}
    _PRODUCTION_BUILD.append(
        Built(frontend, site, data_dir, run_operation(env, "--environment", "production")))
    return _PRODUCTION_BUILD[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return production_build(tmp_path_factory)


def test_the_operation_builds_and_validates_the_site(built: Built) -> None:
    assert built.result.code == ExitCode.OK, built.result.out + built.result.err
    site = built.site
    assert (site / "index.html").is_file()
    # FRONTEND_BUILD_DIR keeps runs sharing a checkout apart: nothing lands in frontend/build.
    assert not (built.frontend / "build").exists()
    assert f"npm run build -- --out-dir {site.resolve()}" in built.result.out
    chapters = sorted((built.frontend / "docs").glob("*.md*"))
    assert len(chapters) >= 8
    for chapter in chapters:
        assert (site / "docs" / chapter.stem / "index.html").is_file(), chapter.name
    pages = len(chapters) + len(ROUTE_CASES) - 2  # the partial and the draft are no pages
    assert f"index.html and {pages}/{pages} doc pages" in built.result.out
    assert "build-frontend: done" in built.result.out


def test_the_build_gets_the_environment_from_deploy_toml(built: Built) -> None:
    index = (built.site / "index.html").read_text()
    assert "https://physical-ai-textbook.vercel.app/" in index  # SITE_URL: canonical links
    bundles = "".join(p.read_text() for p in built.site.rglob("*.js"))
    assert "https://textbook-api-production.up.railway.app" in bundles  # TEXTBOOK_API_URL


def test_the_manifest_records_a_digest_that_matches_the_tree(built: Built) -> None:
    manifests = sorted((built.data_dir / "artifacts" / "build-frontend").glob("*.json"))
    assert len(manifests) == 1
    manifest = json.loads(manifests[0].read_text())
    sha256, size = recompute_digest(built.site)
    assert (manifest["sha256"], manifest["size"]) == (sha256, size)
    assert manifest["kind"] == "static-site"
    assert manifest["environment"] == "production"
    assert manifests[0].name.endswith(f"-{sha256[:12]}.json")
    assert f"artifact static-site: {built.site.resolve()}" in built.result.out
    assert f"sha256 {sha256}" in built.result.out


def test_npm_ci_is_skipped_when_node_modules_matches_the_lock(built: Built) -> None:
    assert "skipped: node_modules/.package-lock.json matches package-lock.json" in (
        built.result.out
    )


def test_a_changed_lock_is_not_taken_for_installed(tmp_path: Path) -> None:
    frontend = tmp_path / "site"
    (frontend / "node_modules").mkdir(parents=True)
    lock: dict[str, Any] = {
        "lockfileVersion": 3,
        "packages": {
            "": {"dependencies": {"a": "^1.0.0"}},
            "node_modules/a": {"version": "1.0.0"},
            "node_modules/b-linux": {"version": "2.0.0", "optional": True},
        },
    }
    installed = {"lockfileVersion": 3, "packages": {"node_modules/a": {"version": "1.0.0"}}}
    (frontend / "package.json").write_text(json.dumps({"dependencies": {"a": "^1.0.0"}}))
    (frontend / "package-lock.json").write_text(json.dumps(lock))
    hidden = frontend / "node_modules" / ".package-lock.json"
    hidden.write_text(json.dumps(installed))
    assert install_state(frontend) is not None
    lock["packages"]["node_modules/a"] = {"version": "1.0.1"}
    (frontend / "package-lock.json").write_text(json.dumps(lock))
    assert install_state(frontend) is None
    hidden.unlink()
    assert install_state(frontend) is None


def npm_folder(root: Path, version: str) -> Path:
    """A folder whose lockfile pins package `a` at `version` (nothing is installed yet)."""
    folder = root / "site"
    folder.mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps({"dependencies": {"a": "^1.0.0"}}))
    lock = {"lockfileVersion": 3, "packages": {"": {"dependencies": {"a": "^1.0.0"}},
                                               "node_modules/a": {"version": version}}}
    (folder / "package-lock.json").write_text(json.dumps(lock))
    return folder


class FakeInstall:
    """Stands in for npm: installs what the folder's lockfile pins, counting its runs."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.runs = folder, 0

    def __call__(self) -> None:
        self.runs += 1
        modules = self.folder / "node_modules"
        shutil.rmtree(modules, ignore_errors=True)
        lock = json.loads((self.folder / "package-lock.json").read_text())
        installed = {key: entry for key, entry in lock["packages"].items() if key}
        (modules / "a" / "bin").mkdir(parents=True)
        (modules / "a" / "index.js").write_text(f"// a {installed['node_modules/a']['version']}")
        (modules / ".bin").mkdir()
        (modules / ".bin" / "a").symlink_to("../a/bin")
        (modules / ".cache").mkdir()  # the build's own cache: not the install's
        (modules / ".package-lock.json").write_text(
            json.dumps({"lockfileVersion": 3, "packages": installed}))


def test_a_new_checkout_copies_node_modules_from_the_cache_instead_of_installing(
    toolchain: None, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first = npm_folder(tmp_path / "one", "1.0.0")
    install = FakeInstall(first)
    assert provide_node_modules(first, cache, install) is None
    assert install.runs == 1
    [entry] = cache.iterdir()
    assert not (entry / ".cache").exists() and (entry / "a" / "index.js").is_file()

    os.utime(entry / ".package-lock.json", (1, 1))  # cached long before this checkout
    second = npm_folder(tmp_path / "two", "1.0.0")
    killed = second / ".node_modules.99999.tmp"  # a copy cut short by a kill
    (killed / "a").mkdir(parents=True)
    other = FakeInstall(second)
    reason = provide_node_modules(second, cache, other)
    assert not killed.exists()
    assert other.runs == 0
    assert reason is not None and reason.startswith(f"node_modules copied from {entry}")
    copied = second / "node_modules"
    assert (copied / "a" / "index.js").read_text() == "// a 1.0.0"
    # as after an install: not older than the lockfile (the frontend session's check)
    lock_time = (second / "package-lock.json").stat().st_mtime
    assert (copied / ".package-lock.json").stat().st_mtime >= lock_time
    assert os.readlink(copied / ".bin" / "a") == "../a/bin"  # links stay links, relative
    assert provide_node_modules(second, cache, other) == install_state(second)  # kept as is


def test_a_changed_lockfile_installs_again_and_the_cache_keeps_the_newest_two(
    toolchain: None, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    for number, version in enumerate(("1.0.0", "1.0.1", "1.0.2")):
        folder = npm_folder(tmp_path / str(number), version)
        install = FakeInstall(folder)
        provide_node_modules(folder, cache, install)
        assert install.runs == 1, version  # another lockfile: nothing in the cache fits
    kept = sorted((entry / "a" / "index.js").read_text() for entry in cache.iterdir())
    assert kept == ["// a 1.0.1", "// a 1.0.2"]


def test_a_save_to_the_cache_cut_short_is_removed_and_one_under_way_is_kept(
    toolchain: None, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    ended = subprocess.Popen(["true"])
    ended.wait()
    killed = cache / f".site-0123456789abcdef.{ended.pid}.tmp"
    under_way = cache / f".site-fedcba9876543210.{os.getppid()}.tmp"  # a live run's
    for staging in (killed, under_way):
        (staging / "a").mkdir(parents=True)
    folder = npm_folder(tmp_path, "1.0.0")
    provide_node_modules(folder, cache, FakeInstall(folder))
    assert not killed.exists()
    assert (under_way / "a").is_dir()
    assert len([entry for entry in cache.iterdir() if not entry.name.startswith(".")]) == 1


def test_a_cached_copy_that_does_not_match_the_lockfile_is_installed_over(
    toolchain: None, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    provide_node_modules(npm_folder(tmp_path / "one", "1.0.0"), cache,
                         FakeInstall(tmp_path / "one" / "site"))
    [entry] = cache.iterdir()
    (entry / ".package-lock.json").write_text("{}")  # a cache entry someone edited
    folder = npm_folder(tmp_path / "two", "1.0.0")
    install = FakeInstall(folder)
    assert provide_node_modules(folder, cache, install) is None
    assert install.runs == 1 and install_state(folder) is not None


def test_a_cache_that_cannot_be_written_never_fails_the_install(
    toolchain: None, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cache.write_text("a file where the cache folder would be")
    folder = npm_folder(tmp_path, "1.0.0")
    install = FakeInstall(folder)
    assert provide_node_modules(folder, cache, install) is None
    assert install.runs == 1 and install_state(folder) is not None


def sitemap_doc_routes(site: Path) -> set[str]:
    """The doc routes the build emitted, as its sitemap lists them (no trailing slash)."""
    tree = ElementTree.parse(site / "sitemap.xml")  # nosec B314: our own build's output
    locations = [loc.text or "" for loc in tree.iter(
        "{http://www.sitemaps.org/schemas/sitemap/0.9}loc")]
    paths = {urlsplit(location).path.rstrip("/") for location in locations}
    return {path for path in paths if path.startswith("/docs/")}


def test_doc_routes_match_the_routes_the_build_emits(built: Built) -> None:
    """One route implementation serves build-frontend's page check and the indexer's URLs."""
    emitted = sitemap_doc_routes(built.site)
    docs = built.frontend / "docs"
    expected = {"/" + files[0].removesuffix("/index.html")
                for files in build_frontend.expected_pages(docs).values()}
    assert expected == emitted
    indexed = {chunk.url.split("#")[0] for chunk in load_corpus(docs)}
    assert indexed == emitted
    assert {"/docs/route-cases", "/docs/route-cases/basics", "/docs/route-cases/basics/setup",
            "/docs/route-cases/guide", "/docs/route-cases/guide/renamed", "/docs/moved-elsewhere",
            "/docs/route-cases/guide/deep/nested", "/docs/route-cases/2021-01-report",
            "/docs/route-cases/04-kept", "/docs/route-cases/custom-id"} <= emitted
    assert not {route for route in emitted if "partial" in route or "unfinished" in route}


def test_hashed_assets_are_the_only_files_under_assets(built: Built) -> None:
    """vercel.json caches /assets/* as immutable: safe only if every name carries a hash."""
    assets = [p for p in (built.site / "assets").rglob("*") if p.is_file()]
    assert assets
    unhashed = [p.name for p in assets if not re.search(r"[.-][0-9a-f]{8,}\.", p.name)]
    assert unhashed == []


def test_a_broken_link_fails_the_build_naming_file_and_link(
    toolchain: None, tmp_path: Path
) -> None:
    frontend = site_copy(tmp_path)
    chapter = frontend / "docs" / "kinematics.md"
    chapter.write_text(
        chapter.read_text() + "\n\nSee [the missing chapter](./no-such-chapter.md).\n"
    )
    data_dir = tmp_path / "data"
    result = run_operation({"FRONTEND_DIR": str(frontend), "DATA_DIR": str(data_dir)})
    assert result.code == ExitCode.FAILED, result.out + result.err
    assert "no-such-chapter.md" in result.err and "kinematics.md" in result.err
    assert "no-such-chapter.md" in result.out  # Docusaurus's own report, streamed
    assert "rolling back: remove the unfinished" in result.out
    assert not (frontend / "build").exists()
    assert not list(data_dir.glob("artifacts/build-frontend/*.json"))
    assert "build-frontend: done" not in result.out


def test_no_docs_is_a_usage_error(toolchain: None, tmp_path: Path) -> None:
    frontend = tmp_path / "frontend"
    (frontend / "docs").mkdir(parents=True)
    (frontend / "docs" / "_partial.md").write_text("# not a page\n")
    for name in ("package.json", "package-lock.json"):
        shutil.copy(FRONTEND / name, frontend / name)
    result = run_operation({"FRONTEND_DIR": str(frontend), "DATA_DIR": str(tmp_path)})
    assert result.code == ExitCode.USAGE
    assert "holds no .md or .mdx doc" in result.err


@pytest.mark.parametrize("inside", [".", ".."])
def test_a_build_dir_holding_the_frontend_is_a_usage_error(inside: str, tmp_path: Path) -> None:
    frontend = site_copy(tmp_path)
    build_dir = frontend / inside
    result = run_operation({"FRONTEND_DIR": str(frontend), "DATA_DIR": str(tmp_path / "data"),
                            "FRONTEND_BUILD_DIR": str(build_dir)})
    assert result.code == ExitCode.USAGE, result.out + result.err
    assert f"FRONTEND_BUILD_DIR {build_dir} would hold FRONTEND_DIR {frontend}" in result.err
    assert (frontend / "docs" / "kinematics.md").is_file() and "plan" not in result.out


def test_node_missing_is_a_usage_error_naming_node(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    result = run_operation({"PATH": str(empty), "DATA_DIR": str(tmp_path)}, "--dry-run")
    assert result.code == ExitCode.USAGE
    assert "not on PATH: node (Node.js 20 or newer" in result.err
    assert "npm (it ships with Node.js" in result.err
    assert "plan" not in result.out


def test_the_local_site_url_is_on_the_port_the_stack_serves(
    toolchain: None, tmp_path: Path
) -> None:
    # deploy.toml's local site_url names port 8765, LOCAL_PORT's default; another LOCAL_PORT
    # must reach the build, or the site's canonical URLs point at a port nothing serves.
    built = run_operation({"DATA_DIR": str(tmp_path), "LOCAL_PORT": "9123"},
                          "--environment", "local", "--dry-run")
    assert built.code == 0, built.err
    assert "SITE_URL=http://127.0.0.1:9123 TEXTBOOK_API_URL=''" in built.out
    staging = run_operation({"DATA_DIR": str(tmp_path), "LOCAL_PORT": "9123"},
                            "--environment", "staging", "--dry-run")
    assert "SITE_URL=https://physical-ai-textbook-staging.vercel.app " in staging.out
    # The local target's --port reaches the site build it composes the same way.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATA_DIR", str(tmp_path))
        patch.delenv("LOCAL_PORT", raising=False)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli.main(["deploy-frontend", "--port", "9124", "--dry-run"]) == 0
    assert "build-frontend:build" in out.getvalue()
    assert "SITE_URL=http://127.0.0.1:9124 TEXTBOOK_API_URL=''" in out.getvalue()


def test_an_unknown_environment_is_a_usage_error(tmp_path: Path) -> None:
    result = run_operation({"DATA_DIR": str(tmp_path)}, "--environment", "moon", "--dry-run")
    assert result.code == ExitCode.USAGE
    assert "unknown environment 'moon': deploy.toml defines local, preview" in result.err
    unknown_default = run_operation({"DATA_DIR": str(tmp_path), "ENVIRONMENT": "moon"}, "--dry-run")
    assert unknown_default.code == ExitCode.USAGE
    assert "ENVIRONMENT 'moon' has no [frontend.moon] table" in unknown_default.err


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[frontend.staging]\nsite_url = "ftp://x"\napi_base_url = ""\n',
         "frontend.staging.site_url must be an http(s) URL"),
        ('[frontend.staging]\nsite_url = "https://x/sub"\napi_base_url = ""\n',
         "frontend.staging.site_url must be scheme://host[:port] only"),
        ('[frontend.staging]\nsite_url = "https://x"\n',
         "frontend.staging.api_base_url is missing"),
        ('[frontend.staging]\nsite_url = "https://x"\napi_base_url = "api"\n',
         "frontend.staging.api_base_url must be an http(s) URL or empty (same origin)"),
        ('[frontend.staging]\nsite_url = "https://x"\napi_base_url = ""\ncdn = 1\n',
         "frontend.staging.cdn is not a known key"),
        ("[frontend]\n", "no [frontend.<environment>] table"),
        ("[frontend\n", "not valid TOML"),
    ],
)
def test_deploy_config_errors_name_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, message: str
) -> None:
    config = tmp_path / "deploy.toml"
    config.write_text(toml)
    monkeypatch.setattr(build_frontend, "DEPLOY_CONFIG", config)
    result = run_operation({"DATA_DIR": str(tmp_path)}, "--environment", "staging", "--dry-run")
    assert result.code == ExitCode.USAGE
    assert f"{config}: {message}" in result.err


def test_a_build_already_running_holds_the_lock(toolchain: None, tmp_path: Path) -> None:
    with file_lock(tmp_path / "build-frontend.lock", "build-frontend", 0):
        result = run_operation({"DATA_DIR": str(tmp_path)})
    assert result.code == ExitCode.LOCKED
    assert "is held by 'textbook-pipeline build-frontend" in result.err


@pytest.mark.parametrize(
    ("source", "front_matter", "slug"),
    [
        ("intro.md", {}, "/intro"),
        ("intro.md", {"id": "start"}, "/start"),
        ("01-basics/02-setup.mdx", {}, "/basics/setup"),
        ("guide/index.md", {}, "/guide/"),
        ("guide/guide.md", {}, "/guide/"),
        ("guide/README.md", {"id": "ignored"}, "/guide/"),
        ("guide/page.md", {"slug": "/elsewhere/page"}, "/elsewhere/page"),
        ("guide/page.md", {"slug": "renamed"}, "/guide/renamed"),
        ("guide/deep/page.md", {"slug": "../up"}, "/guide/up"),
        ("2021-01-report.md", {}, "/2021-01-report"),
        ("01-keep.md", {"parse_number_prefixes": False}, "/01-keep"),
        ("01-dir/02-keep.md", {"parse_number_prefixes": False}, "/01-dir/02-keep"),
        ("01-dir/01-dir.md", {}, "/dir/"),
        ("a/b/c/03-deep.md", {}, "/a/b/c/deep"),
    ],
)
def test_doc_routes_are_derived_as_docusaurus_does(
    source: str, front_matter: dict[str, object], slug: str
) -> None:
    assert doc_slug(PurePosixPath(source), front_matter) == slug


def test_partials_and_tests_are_not_pages(tmp_path: Path) -> None:
    for name in ("a.md", "_partial.mdx", "_private/b.md", "sub/c.mdx", "sub/d.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("---\ntitle: x\n---\n# x\n")
    (tmp_path / "sub" / "e.md").write_text("---\ndraft: true\n---\n# draft\n")
    pages = build_frontend.expected_pages(tmp_path)
    assert pages == {
        "a.md": ["docs/a/index.html", "docs/a.html"],
        "sub/c.mdx": ["docs/sub/c/index.html", "docs/sub/c.html"],
    }


# --------------------------------------------------------------------------- vercel.json


def vercel_pattern(source: str) -> re.Pattern[str]:
    """A Vercel `source` (path-to-regexp, the subset used here) as a regular expression."""
    assert re.fullmatch(r"[/\w.\-]*(\(\.\*\))?", source), f"unsupported pattern {source}"
    return re.compile(re.escape(source).replace(re.escape("(.*)"), "(.*)") + "$")


def header_values(config: dict[str, Any], path: str) -> list[str]:
    values = []
    for rule in config.get("headers", []):
        if vercel_pattern(rule["source"]).match(path):
            values += [h["value"] for h in rule["headers"] if h["key"].lower() == "cache-control"]
    return values


def test_vercel_json_serves_the_build_output() -> None:
    config = json.loads((ROOT / "vercel.json").read_text())
    assert config["outputDirectory"] == f"frontend/{build_frontend.OUTPUT_DIR}"
    assert "build-frontend" in config["buildCommand"]
    assert config["cleanUrls"] is True


def test_vercel_json_caches_hashed_assets_only() -> None:
    config = json.loads((ROOT / "vercel.json").read_text())
    assert "immutable" in " ".join(header_values(config, "/assets/js/main.0123abcd.js"))
    for html in ("/", "/index.html", "/docs/kinematics", "/docs/kinematics/index.html",
                 "/404.html", "/img/logo.svg", "/sitemap.xml"):
        for value in header_values(config, html):
            assert "immutable" not in value and "max-age=31536000" not in value, html


def test_a_long_cache_on_html_would_be_caught() -> None:
    config = {"headers": [{"source": "/(.*)", "headers": [
        {"key": "Cache-Control", "value": "public, max-age=31536000, immutable"}]}]}
    assert "immutable" in " ".join(header_values(config, "/docs/kinematics"))
