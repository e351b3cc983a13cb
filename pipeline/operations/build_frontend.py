"""build-frontend: build the Docusaurus site for an environment, validate it, record its digest.

The environment's public settings (site URL, API base URL) come from the `[frontend.<env>]`
tables of the committed `deploy.toml`; they reach Docusaurus as SITE_URL, TEXTBOOK_API_URL and
SITE_ENVIRONMENT. `npm ci` is skipped when node_modules already matches package-lock.json, or
replaced by a copy from the machine's cache (`provide_node_modules`).
Docusaurus builds into FRONTEND_BUILD_DIR (default `<FRONTEND_DIR>/build`; broken links and
broken Markdown links throw); a build or validation failure removes that tree, so no half-built
site is left looking done. Runs sharing a checkout build one at a time (the npm folder's lock),
and runs at once that read their build afterwards (the e2e sessions) each set a folder of their
own, so one never serves or deploys a tree the other is rebuilding.

Validation: `index.html`, one rendered page per doc (routes from the one implementation,
`textbook_api.rag.chunking.doc_slug`, which the indexer's chunk URLs use too),
and a size budget of SIZE_BUDGET_BYTES for the whole tree.
The tree's digest (pipeline.artifacts: sha256 over each file's `relative/path NUL bytes`, in
sorted path order) and size are printed, recorded as an artifact of kind `static-site`, and
written to a manifest `<DATA_DIR>/artifacts/build-frontend/<time>-<sha256>.json`.

The build carries its identity: `build-info.json` at the site's root holds the git sha and the
sha256 of the tree as validated (before build-info.json was added, since a file cannot hold
its own digest), so a deployed copy can be checked against the recorded build.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess  # nosec B404: runs node and npm, resolved on PATH at plan time, no shell
import sys
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from pipeline.artifacts import digest
from pipeline.core import Operation, Option, OptionValue, Plan, Run, Step
from pipeline.deploy_config import DEPLOY_CONFIG, load_section
from pipeline.errors import OperationFailed, UsageError
from pipeline.locks import file_lock
from pipeline.recording import Origin
from textbook_api.config import Settings
from textbook_api.rag.chunking import DOCS_ROUTE as DOCS_URL
from textbook_api.rag.chunking import doc_slug, iter_doc_files, split_front_matter
from textbook_api.rag.errors import CorpusError

NAME = "build-frontend"
LOCAL_ENVIRONMENT = "local"
ARTIFACT_KIND = "static-site"
#: The whole built tree (HTML, JS, CSS, images): about 1.3 MB today; 25 MB leaves room for
#: images and chapters, and catches a runaway (a video or a source map committed to static/).
SIZE_BUDGET_BYTES = 25 * 1024 * 1024
MIN_NODE_MAJOR = 20
DOCS_ROUTE = DOCS_URL.strip("/")  # routeBasePath of the docs plugin (docusaurus.config.js)
OUTPUT_DIR = "build"  # vercel.json serves frontend/build of the folder it packages
BUILD_INFO = "build-info.json"

OPTIONS = (
    Option(
        "environment",
        "deploy.toml [frontend.ENV] to build for: local, preview, staging or production"
        " (default: the ENVIRONMENT setting)",
        None,
        "ENV",
    ),
)

_KEYS = {"site_url": str, "api_base_url": str}
_BUILD_PROBLEM = re.compile(
    r"broken link|broken markdown|couldn't be resolved|could not be resolved|^\s*-> linking to"
    r"|error:|\berror\b.*\bin\b.*\.mdx?",
    re.I,
)


# --------------------------------------------------------------------------- deploy.toml


@dataclass(frozen=True)
class FrontendProfile:
    environment: str
    site_url: str
    api_base_url: str

    def build_env(self) -> dict[str, str]:
        return {
            "SITE_URL": self.site_url,
            "TEXTBOOK_API_URL": self.api_base_url,
            "SITE_ENVIRONMENT": self.environment,
        }


def _check_url(config: Path, key: str, value: str, *, empty_ok: bool, path_ok: bool) -> str:
    if value == "" and empty_ok:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        same_origin = " or empty (same origin)" if empty_ok else ""
        raise UsageError(f"{config}: {key} must be an http(s) URL{same_origin}, not {value!r}")
    if parts.query or parts.fragment or (not path_ok and parts.path not in ("", "/")):
        raise UsageError(f"{config}: {key} must be scheme://host[:port] only, not {value!r}")
    return value.rstrip("/")


def load_profiles(config: Path) -> dict[str, FrontendProfile]:
    """The `[frontend.<environment>]` tables of deploy.toml, validated; errors name the key."""
    profiles = {}
    for environment, table in load_section(config, "frontend", _KEYS).items():
        prefix = f"frontend.{environment}"
        profiles[environment] = FrontendProfile(
            environment,
            _check_url(config, f"{prefix}.site_url", table["site_url"],
                       empty_ok=False, path_ok=False),
            _check_url(config, f"{prefix}.api_base_url", table["api_base_url"],
                       empty_ok=True, path_ok=True),
        )
    return profiles


def select_profile(settings: Settings, requested: OptionValue, config: Path) -> FrontendProfile:
    profiles = load_profiles(config)
    known = ", ".join(profiles)
    if requested:
        name = str(requested)
        if name not in profiles:
            raise UsageError(f"unknown environment {name!r}: {config} defines {known}")
    else:
        name = settings.environment
        if name not in profiles:
            raise UsageError(
                f"ENVIRONMENT {name!r} has no [frontend.{name}] table in {config} ({known}):"
                " pass --environment"
            )
    profile = profiles[name]
    if name != LOCAL_ENVIRONMENT:
        return profile
    # The local stack serves the site on LOCAL_PORT (or the local target's --port, which it
    # passes on as local_port); deploy.toml's port is only that setting's default.
    site = urlsplit(profile.site_url)
    host = site.netloc.rsplit(":", 1)[0] if site.port else site.netloc  # keeps [::1] whole
    return replace(profile, site_url=site._replace(
        netloc=f"{host}:{settings.local_port}").geturl())


# --------------------------------------------------------------------------- docs and routes


def expected_pages(docs_dir: Path) -> dict[str, list[str]]:
    """For each rendered doc: the build-relative files one of which must exist."""
    pages: dict[str, list[str]] = {}
    for path in iter_doc_files(docs_dir):
        relative = PurePosixPath(path.relative_to(docs_dir).as_posix())
        try:
            front_matter, _ = split_front_matter(
                (docs_dir / relative).read_text(encoding="utf-8"), docs_dir / relative
            )
        except CorpusError as error:
            raise UsageError(str(error)) from None
        if front_matter.get("draft") is True:
            continue  # drafts are not rendered in a production build
        route = f"{DOCS_ROUTE}/{doc_slug(relative, front_matter).strip('/')}".rstrip("/")
        pages[str(relative)] = [f"{route}/index.html", f"{route}.html"]
    return pages


# --------------------------------------------------------------------------- node and npm


@dataclass(frozen=True)
class Toolchain:
    node: str
    npm: str
    node_version: str


def find_toolchain() -> Toolchain:
    """node and npm on PATH (checked while planning, so a dry run reports them missing too)."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    missing = [
        hint for tool, hint in (
            (node, f"node (Node.js {MIN_NODE_MAJOR} or newer; Debian: apt-get install nodejs)"),
            (npm, "npm (it ships with Node.js; Debian: apt-get install npm)"),
        ) if tool is None
    ]
    if node is None or npm is None:
        raise UsageError(f"not on PATH: {' and '.join(missing)}: install it and retry")
    result = subprocess.run(  # nosec B603: node's own version, argv from PATH lookup
        [node, "--version"], capture_output=True, text=True, check=False
    )
    version = result.stdout.strip()
    match = re.match(r"v(\d+)\.", version)
    if result.returncode != 0 or match is None:
        raise UsageError(f"{node} --version failed: {result.stderr.strip() or version!r}")
    if int(match.group(1)) < MIN_NODE_MAJOR:
        raise UsageError(f"node {version} is too old: install Node.js {MIN_NODE_MAJOR} or newer")
    return Toolchain(node, npm, version)


def install_state(frontend: Path) -> str | None:
    """Why `npm ci` can be skipped (node_modules matches the lockfile), or None if it cannot."""
    try:
        lock = json.loads((frontend / "package-lock.json").read_text(encoding="utf-8"))
        installed = json.loads(
            (frontend / "node_modules" / ".package-lock.json").read_text(encoding="utf-8")
        )
        manifest = json.loads((frontend / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    root = lock.get("packages", {}).get("", {})
    for group in ("dependencies", "devDependencies", "overrides"):
        if group != "overrides" and root.get(group, {}) != manifest.get(group, {}):
            return None
    if installed.get("lockfileVersion") != lock.get("lockfileVersion"):
        return None
    wanted = {key: value for key, value in lock.get("packages", {}).items() if key}
    have = installed.get("packages", {})
    fields = ("version", "resolved", "integrity")
    for key, entry in have.items():
        if key not in wanted or any(entry.get(f) != wanted[key].get(f) for f in fields):
            return None
    for key, entry in wanted.items():
        if key not in have and not entry.get("optional") and not entry.get("peer"):
            return None
    return (
        f"node_modules/.package-lock.json matches package-lock.json"
        f" ({len(have)} packages installed, {len(wanted) - len(have)} optional ones not"
        " needed on this platform)"
    )


NPM_FOLDER_LOCK = ".install.lock"
NPM_FOLDER_WAIT_SECONDS = 600  # for another run's `npm ci` or build in the same folder
NODE_MODULES_KEPT = 2  # cached node_modules per npm folder: the most recently used lockfiles'


@contextmanager
def npm_folder_lock(folder: Path) -> Iterator[None]:
    """Hold the lock of an npm folder.

    Runs that share a checkout (nox sessions in parallel, two deploys) install one at a time,
    and the second finds the first's node_modules instead of replacing it under its build;
    build-frontend holds it through its build too (Docusaurus writes inside the folder).
    """
    with file_lock(folder / NPM_FOLDER_LOCK, "npm-folder", NPM_FOLDER_WAIT_SECONDS):
        yield


def provide_node_modules(folder: Path, cache: Path, install: Callable[[], None]) -> str | None:
    """Make folder/node_modules match its lockfile (the caller holds `npm_folder_lock`).

    Kept when it matches; else copied from the machine's cache (NODE_MODULES_CACHE_DIR), where
    each lockfile's install is kept per Node.js version and platform; else installed by
    `install()` and then copied into the cache, so the next checkout copies instead of
    installing (npm ci of the site: ~50 CPU-s; the copy: ~5). Returns why `install` did not
    run, or None when it ran.
    """
    if (reason := install_state(folder)) is not None:
        return reason
    modules = folder / "node_modules"
    for unfinished in folder.glob(_staging(modules, "*").name):  # a run killed while copying
        shutil.rmtree(unfinished, ignore_errors=True)
    digest = hashlib.sha256((folder / "package-lock.json").read_bytes())
    digest.update(f"{find_toolchain().node_version} {sys.platform} {platform.machine()}".encode())
    entry = cache / f"{folder.name}-{digest.hexdigest()[:16]}"
    _remove_abandoned_copies(cache)
    if entry.is_dir() and _copy_tree(entry, modules):
        if (reason := install_state(folder)) is not None:
            os.utime(entry)  # the most recently used are kept
            return f"node_modules copied from {entry} ({reason})"
    install()
    if not entry.exists() and _copy_tree(modules, entry, skip=".cache"):
        kept = sorted(cache.glob(f"{folder.name}-*"), key=lambda path: path.stat().st_mtime)
        for stale in kept[:-NODE_MODULES_KEPT]:
            shutil.rmtree(stale, ignore_errors=True)
    return None


def _staging(target: Path, run: str) -> Path:
    """Where a run's copy to `target` is made before it is renamed into place."""
    return target.with_name(f".{target.name}.{run}.tmp")


def _remove_abandoned_copies(cache: Path) -> None:
    """Remove the cache's copies in the making whose run is gone (killed while saving): the
    cache is the machine's, so another checkout's run may be saving into it now and its copy
    stays; a copy of node_modules is hundreds of MB that nothing else would remove."""
    # Here, not at the top: pipeline.local.server reaches this module back through the targets.
    from pipeline.local.server import alive

    for staging in cache.glob(_staging(cache / "*", "*").name):
        run = staging.name.removesuffix(".tmp").rsplit(".", 1)[-1]  # _staging's `run`: a pid
        if run.isdigit() and not alive(int(run)):
            shutil.rmtree(staging, ignore_errors=True)


def _copy_tree(source: Path, target: Path, skip: str = "") -> bool:
    """Replace target by a copy of source, made beside it and renamed into place, so that a copy
    cut short is never found under the target's name; False if it could not be made."""
    staging = _staging(target, str(os.getpid()))
    shutil.rmtree(staging, ignore_errors=True)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Files get the copy's time, as an install would leave them: checks that take
        # node_modules/.package-lock.json older than package-lock.json for stale (the frontend
        # session's) must not take a copy made from an older checkout for one.
        shutil.copytree(source, staging, symlinks=True, copy_function=shutil.copy,
                        ignore=lambda folder, names: [skip] if folder == str(source) else [])
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        return False
    return True


def _npm_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "NO_UPDATE_NOTIFIER": "1",
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        "npm_config_audit": "false",
        **(extra or {}),
    }


def stream(run: Run, argv: list[str], cwd: Path, env: Mapping[str, str]) -> tuple[int, list[str]]:
    """Run a command, forwarding its output (stdout and stderr) line by line as it comes."""
    tail: deque[str] = deque(maxlen=400)
    process = subprocess.Popen(  # nosec B603: npm from PATH lookup, fixed arguments, no shell
        argv, cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, text=True, errors="replace",
    )
    assert process.stdout is not None  # nosec B101: stdout=PIPE above
    with process:
        for line in process.stdout:
            line = line.rstrip()
            tail.append(line)
            run.console.print(f"    | {line}")
    return process.returncode, list(tail)


def build_problems(lines: list[str]) -> list[str]:
    """The lines of a failed Docusaurus build that say what broke (file, link)."""
    found = [
        line.strip() for line in lines
        if _BUILD_PROBLEM.search(line) and not line.lstrip().startswith(("To ignore", "Make sure"))
    ]
    return list(dict.fromkeys(found))[:20]


# --------------------------------------------------------------------------- the built tree


def tree_files(root: Path) -> list[Path]:
    """The tree's files; a symlink fails the build (a static site holds plain files only)."""
    files = []
    for path in root.rglob("*"):
        if path.is_symlink():
            raise OperationFailed(f"{path} is a symlink: a static site holds plain files only")
        if path.is_file():
            files.append(path)
    return files


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


# --------------------------------------------------------------------------- steps


@dataclass
class _Built:
    """What the build's steps learn and the record step writes down."""

    npm_version: str = ""
    sha256: str = ""
    size: int = 0
    files: int = 0


def plan(settings: Settings, options: Mapping[str, OptionValue]) -> Plan:
    profile = select_profile(settings, options.get("environment"), DEPLOY_CONFIG)
    frontend = settings.frontend_dir
    if not (frontend / "package.json").is_file():
        raise UsageError(f"FRONTEND_DIR {frontend} holds no package.json")
    if not (frontend / "package-lock.json").is_file():
        raise UsageError(f"{frontend}/package-lock.json is missing: run npm install there once")
    docs_dir = frontend / "docs"
    pages = expected_pages(docs_dir) if docs_dir.is_dir() else {}
    if not pages:
        raise UsageError(f"{docs_dir} holds no .md or .mdx doc: nothing to build")
    output = settings.site_build_dir
    out_dir = output.resolve()  # absolute: Docusaurus runs in the frontend folder
    if out_dir in (frontend.resolve(), *frontend.resolve().parents):
        raise UsageError(f"FRONTEND_BUILD_DIR {output} would hold FRONTEND_DIR {frontend}:"
                         " the build replaces its folder")
    tools = find_toolchain()
    artifacts = settings.data_dir / "artifacts" / NAME
    lock_path = settings.data_dir / f"{NAME}.lock"
    env = profile.build_env()

    built = _Built()

    def lock(run: Run) -> None:
        run.resources.enter_context(file_lock(lock_path, NAME, 0))

    def check_tools(run: Run) -> None:
        result = subprocess.run(  # nosec B603: npm from PATH lookup, fixed arguments
            [tools.npm, "--version"], capture_output=True, text=True, check=False,
            env=_npm_env(),
        )
        if result.returncode != 0:
            raise UsageError(f"{tools.npm} --version failed: {result.stderr.strip()}")
        built.npm_version = result.stdout.strip()
        run.console.print(f"    node {tools.node_version}, npm {built.npm_version}")

    def check_docs(run: Run) -> None:
        for source, candidates in pages.items():
            run.console.print(f"    {source} -> /{candidates[0].removesuffix('/index.html')}")

    def install(run: Run) -> None:
        def npm_ci() -> None:
            code, lines = stream(run, [tools.npm, "ci", "--no-audit", "--no-fund"], frontend,
                                 _npm_env())
            if code != 0:
                raise OperationFailed(f"npm ci exited {code}: {' / '.join(lines[-3:])}")

        run.resources.enter_context(npm_folder_lock(frontend))  # through the build
        reason = provide_node_modules(frontend, settings.node_modules_cache, npm_ci)
        if reason is not None:
            run.console.print(f"    skipped: {reason}")

    def remove_output() -> None:
        shutil.rmtree(output, ignore_errors=True)

    def build(run: Run) -> None:
        run.on_failure(f"remove the unfinished {output}", remove_output)
        code, lines = stream(run, [tools.npm, "run", "build", "--", "--out-dir", str(out_dir)],
                             frontend, _npm_env(env))
        if code != 0:
            problems = build_problems(lines) or lines[-5:]
            raise OperationFailed(
                f"npm run build exited {code}; the site was not built:\n      "
                + "\n      ".join(problems)
            )

    def validate(run: Run) -> None:
        if not (output / "index.html").is_file():
            raise OperationFailed(f"{output}/index.html is missing")
        missing = [
            f"{source} -> {candidates[0]}" for source, candidates in pages.items()
            if not any((output / candidate).is_file() for candidate in candidates)
        ]
        if missing:
            raise OperationFailed("doc page(s) not rendered: " + ", ".join(missing))
        count = len(tree_files(output))
        found = digest(output)
        size = found.size_bytes
        if size > SIZE_BUDGET_BYTES:
            raise OperationFailed(
                f"{output} is {_megabytes(size)}, over the {_megabytes(SIZE_BUDGET_BYTES)} budget"
            )
        built.sha256, built.size, built.files = found.sha256, size, count
        run.console.print(
            f"    index.html and {len(pages)}/{len(pages)} doc pages;"
            f" {count} files, {_megabytes(size)} of the {_megabytes(SIZE_BUDGET_BYTES)} budget"
        )

    def identify(run: Run) -> None:
        info = {"git_sha": Origin.detect().git_sha, "site_sha256": built.sha256,
                "environment": profile.environment}
        (output / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        found = digest(output)
        built.sha256, built.size, built.files = found.sha256, found.size_bytes, built.files + 1
        run.console.print(f"    {BUILD_INFO}: git {info['git_sha']}, site {info['site_sha256']}")

    def record(run: Run) -> None:
        sha256, size, count = built.sha256, built.size, built.files
        created = datetime.now(UTC)
        manifest = {
            "kind": ARTIFACT_KIND,
            "operation": NAME,
            "environment": profile.environment,
            "uri": output.resolve().as_uri(),
            "path": str(output),
            "sha256": sha256,
            "size": size,
            "files": count,
            "digest": "sha256 of sorted (relative/path NUL bytes) (pipeline.artifacts)",
            "site_url": profile.site_url,
            "api_base_url": profile.api_base_url,
            "node": tools.node_version,
            "npm": built.npm_version,
            "created_at": created.isoformat(),
        }
        artifacts.mkdir(parents=True, exist_ok=True)
        path = artifacts / f"{created:%Y%m%dT%H%M%SZ}-{sha256[:12]}.json"
        path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        run.artifact(ARTIFACT_KIND, output.resolve())
        run.console.print(f"    {count} files; manifest {path}")

    assignments = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
    steps = (
        Step("lock", f"flock {lock_path} (fail at once if another build holds it)", lock),
        Step("check-tools", f"{tools.node} --version ({tools.node_version}); {tools.npm}"
             " --version", check_tools),
        Step("check-docs", f"{len(pages)} docs in {docs_dir} -> /{DOCS_ROUTE}/...", check_docs),
        Step("install", f"flock {frontend / NPM_FOLDER_LOCK} (held through the build); cd"
             f" {frontend} && npm ci --no-audit --no-fund (skipped when node_modules matches"
             f" package-lock.json; a copy from {settings.node_modules_cache} when it holds one)",
             install),
        Step("build", f"cd {frontend} && {assignments} npm run build -- --out-dir {out_dir}",
             build),
        Step("validate", f"{output}: index.html, {len(pages)} doc pages,"
             f" at most {_megabytes(SIZE_BUDGET_BYTES)}", validate),
        Step("identify", f"write {output}/{BUILD_INFO} (git sha, the validated tree's sha256)",
             identify),
        Step("record", f"sha256 and size of {output} -> {artifacts}/<time>-<sha256>.json",
             record),
    )
    context = {"environment": profile.environment, "site": profile.site_url,
               "frontend": str(frontend)}
    return Plan(NAME, context, steps, service="frontend")


OPERATION = Operation(
    name=NAME,
    help="Build the Docusaurus site for an environment, validate it and record its sha256.",
    options=OPTIONS,
    plan=plan,
)
