"""The vercel target with the real, pinned Vercel CLI (tools/vercel).

`vercel build` runs offline on the real Docusaurus build (one per module). Vercel's API cannot
be reached from here, so `FakeVercel` answers what the CLI asks through its hidden `--api`
option, keeps the files it uploads, and serves each deployment over HTTPS on 127.0.0.1 (a
certificate made for the test, trusted through SSL_CERT_FILE): `/<id>/...` is a deployment,
`/...` is production (the deployment last promoted or rolled back to).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from sqlalchemy import text

from conftest import ROOT, same_through_both_doors, unavailable
from pipeline import cli
from pipeline.operations import build_frontend
from pipeline.operations.build_frontend import npm_folder_lock, provide_node_modules
from pipeline.targets.vercel import CLI_DIR, CLI_INSTALL
from textbook_api.config import Settings, get_settings
from textbook_api.db import build_engine

# The tests that start the real CLI (a Node start-up of ~1 CPU-s per call, 34 CPU-s a session)
# are integration tests: the measured Python of the matrix runs them, on both databases.
cli_runs = pytest.mark.integration
TOKEN = "vercelcanary7d1f0a9c"  # the CLI refuses tokens with "-"
VERCEL = CLI_DIR / "node_modules" / ".bin" / "vercel"


def require_cli() -> None:
    if shutil.which("npm") is None:
        unavailable("npm not on PATH: install Node.js 20 and npm")
    with npm_folder_lock(CLI_DIR):
        provide_node_modules(CLI_DIR, Settings().node_modules_cache, lambda: subprocess.run(
            ["npm", *CLI_INSTALL], cwd=CLI_DIR, check=True, stdout=subprocess.DEVNULL))


@dataclass
class FakeVercel:
    api: str = ""
    site: str = ""  # host:port of production (the site_url): the deployment promoted last
    hosts: dict[str, str] = field(default_factory=dict)  # deployment -> its own host:port
    open_host: Callable[[str], str] = lambda deployment: ""  # starts a deployment's server
    calls: list[tuple[str, str]] = field(default_factory=list)
    tokens: set[str | None] = field(default_factory=set)
    blobs: dict[str, bytes] = field(default_factory=dict)  # uploads, by sha1
    deployments: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> path -> sha1
    production: str | None = None
    ready: bool = True  # False: deployments stay BUILDING
    fail_create: bool = False  # POST /v13/deployments answers 500
    last_alias: dict[str, Any] = field(default_factory=dict)
    # Which deployment (None: production) serves another build's build-info.json than its own.
    serves_another_build: Callable[[str | None], bool] = lambda deployment: False

    def add(self, tree: dict[str, str]) -> str:
        deployment = f"dpl_{len(self.deployments) + 1}"
        self.deployments[deployment] = tree
        self.hosts[deployment] = self.open_host(deployment)
        return deployment

    def seed(self, files: dict[str, bytes]) -> str:
        """A deployment made earlier, serving production."""
        tree = {}
        for path, data in files.items():
            sha = hashlib.sha1(data).hexdigest()  # nosec B324: Vercel's file digest
            self.blobs[sha] = data
            tree[path] = sha
        self.production = self.add(tree)
        return self.production

    def paths(self) -> list[str]:
        return [f"{method} {urlsplit(path).path}" for method, path in self.calls]

    def find(self, id_or_host: str) -> str:
        by_host = {host: deployment for deployment, host in self.hosts.items()}
        return by_host.get(id_or_host, id_or_host)

    def deployment(self, deployment: str) -> dict[str, Any]:
        return {"id": deployment, "url": self.hosts[deployment], "name": "textbook",
                "readyState": "READY" if self.ready else "BUILDING", "target": "production",
                "ownerId": "team_1", "projectId": "prj_1", "createdAt": 1, "alias": [],
                "aliasAssigned": self.ready, "inspectorUrl": f"{self.api}/inspect/{deployment}"}

    def get(self, path: str) -> tuple[int, Any]:
        if path == "/v2/user":
            return 200, {"user": {"id": "u1", "username": "ci", "email": "ci@example.test"}}
        if path.startswith(("/teams/", "/v2/teams/")):
            return 200, {"id": "team_1", "slug": "team", "name": "Team"}
        if path == "/v9/projects/prj_1":
            return 200, {"id": "prj_1", "name": "textbook", "accountId": "team_1",
                         "framework": None, "lastAliasRequest": self.last_alias or None}
        if path.startswith("/v3/env/pull/prj_1/"):
            return 200, {"env": {}}
        if path.startswith("/v13/deployments/"):  # by id, or by URL (a host, as on Vercel)
            found = self.find(unquote(path.removeprefix("/v13/deployments/")))
            if found not in self.deployments:
                return 404, {"error": {"code": "not_found", "message": "Deployment not found"}}
            return 200, self.deployment(found)
        if path == "/v6/deployments":
            listed = [{"uid": d, "url": self.hosts[d], "name": "textbook", "state": "READY",
                       "target": "production", "createdAt": index, "creator": {"uid": "u1"}}
                      for index, d in enumerate(self.deployments)]
            return 200, {"deployments": listed[::-1],
                         "pagination": {"count": len(listed), "next": None, "prev": None}}
        return 404, {"error": {"code": "not_found", "message": f"no route {path}"}}

    def post(self, path: str, body: bytes, digest: str | None) -> tuple[int, Any]:
        if path == "/v2/files":
            self.blobs[str(digest)] = body
            return 200, {}
        if path == "/v13/deployments":
            if self.fail_create:
                return 500, {"error": {"code": "internal", "message": "the fake is down"}}
            files = json.loads(body)["files"]
            missing = [f["sha"] for f in files if f["sha"] not in self.blobs]
            if missing:
                return 400, {"error": {"code": "missing_files", "message": "Missing files",
                                       "missing": missing}}
            deployment = self.add({f["file"].split("static/", 1)[1]: f["sha"] for f in files
                                   if "static/" in f["file"]})
            return 200, self.deployment(deployment)
        for kind in ("promote", "rollback"):
            prefix = f"/v{10 if kind == 'promote' else 9}/projects/prj_1/{kind}/"
            if path.startswith(prefix):
                self.production = self.find(path.removeprefix(prefix))
                self.last_alias = {"jobStatus": "succeeded", "type": kind,
                                   "toDeploymentId": self.production,
                                   "requestedAt": int(time.time() * 1000)}
                return 201, {}
        return 404, {"error": {"code": "not_found", "message": f"no route {path}"}}

    def serve(self, deployment: str | None, path: str) -> bytes | None:
        """What a deployment (None: production) serves at path."""
        if path == "/build-info.json" and self.serves_another_build(deployment):
            return identity("other")
        deployment = deployment or self.production
        if deployment is None:
            return None
        sha = self.deployments[deployment].get(path.lstrip("/") or "index.html")
        return self.blobs.get(sha) if sha else None


def _serve(server: ThreadingHTTPServer) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
        check=True, capture_output=True)
    return folder


@pytest.fixture
def vercel(certificate: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVercel]:
    fake = FakeVercel()
    servers: list[ThreadingHTTPServer] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def answer(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def authorised(self) -> bool:
            fake.calls.append((self.command, self.path))
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            fake.tokens.add(token)
            if token != TOKEN:
                self.answer(403, {"error": {"code": "forbidden", "message":
                                            "The specified token is not valid"}})
                return False
            return True

        def do_GET(self) -> None:
            if self.authorised():
                self.answer(*fake.get(urlsplit(self.path).path))

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.authorised():
                self.answer(*fake.post(urlsplit(self.path).path, body,
                                       self.headers.get("x-now-digest")))

    def https_server(deployment: str | None) -> str:
        """An HTTPS server for one deployment (None: production); its host:port."""

        class Site(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                data = fake.serve(deployment, urlsplit(self.path).path)
                self.send_response(200 if data is not None else 404)
                self.send_header("Content-Length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

        server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate / "cert.pem", certificate / "key.pem")
        server.socket = context.wrap_socket(server.socket, server_side=True)
        servers.append(server)
        _serve(server)
        return f"127.0.0.1:{server.server_address[1]}"

    api = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    servers.append(api)
    _serve(api)
    fake.api = f"http://127.0.0.1:{api.server_address[1]}"
    fake.site = https_server(None)
    fake.open_host = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate / "cert.pem"))
    yield fake
    for server in servers:
        server.shutdown()
        server.server_close()


def identity(tag: str) -> bytes:
    return json.dumps({"git_sha": f"sha-{tag}", "site_sha256": f"tree-{tag}",
                       "environment": "production"}).encode()


def write_site(frontend: Path, tag: str) -> None:
    build = frontend / "build"
    shutil.rmtree(build, ignore_errors=True)
    (build / "docs" / "intro").mkdir(parents=True)
    (build / "index.html").write_text(f"<html>{tag}</html>")
    (build / "docs" / "intro" / "index.html").write_text(f"<html>intro {tag}</html>")
    (build / "build-info.json").write_bytes(identity(tag))


@pytest.fixture
def vercel_env(
    vercel: FakeVercel, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """The deploy's settings. It records on SQLite: the CLI is this module's subject, and the
    recorder is tested on both dialects elsewhere (the PostgreSQL sessions leave these out)."""
    require_cli()
    # deploy.toml's production site_url is the fake's production; the rest is the real file.
    (tmp_path / "deploy.toml").write_text(
        (ROOT / "deploy.toml").read_text().replace(
            "https://physical-ai-textbook.vercel.app", f"https://{vercel.site}"))
    monkeypatch.chdir(tmp_path)
    write_site(tmp_path / "frontend", "new")
    env = {
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": sqlite_url,
        "FRONTEND_DIR": str(tmp_path / "frontend"),
        "VERCEL_TOKEN": TOKEN,
        "VERCEL_ORG_ID": "team_1",
        "VERCEL_PROJECT_ID": "prj_1",
        "VERCEL_API_URL": vercel.api,
        "VERCEL_DEPLOY_TIMEOUT": "60",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return env


def recorded() -> str:
    """Every job, event and artifact row, and the pipeline's logs, as one text."""
    engine = build_engine(get_settings().sqlalchemy_url)
    with engine.connect() as connection:
        rows = [connection.execute(text(f"SELECT * FROM {table}")).all()  # nosec B608
                for table in ("deployment_job", "deployment_event", "deployment_artifact")]
    engine.dispose()
    logs = [p.read_text() for p in (get_settings().data_dir / "logs").glob("*")]
    return repr(rows) + "\n".join(logs)


def deploy(*args: str) -> int:
    return cli.main(["deploy-frontend", "--target", "vercel", "--environment", "production",
                     "--prebuilt", "--yes", *args])


@cli_runs
def test_a_production_deploy_uploads_verifies_then_promotes(
    vercel: FakeVercel, vercel_env: dict[str, str], capsys: pytest.CaptureFixture[str],
) -> None:
    previous = vercel.seed({"index.html": b"old", "build-info.json": identity("old")})
    assert cli.main(["run-migrations"]) == 0  # so that the run is recorded
    assert deploy() == 0, capsys.readouterr()
    # Each CLI run first looks up the user, the team and the project, some of them side by
    # side (their order varies): those lookups as a set, every other call in its order.
    lookups = {"GET /v2/user", "GET /teams/team_1", "GET /v9/projects/prj_1"}
    paths = vercel.paths()
    assert {p for p in paths if p in lookups} == lookups
    assert [p for p in paths if p not in lookups] == [
        "GET /v3/env/pull/prj_1/production",  # vercel pull
        # vercel deploy --prebuilt: the fake lacks every file, so all six are uploaded
        "POST /v13/deployments", *["POST /v2/files"] * 6, "POST /v13/deployments",
        # once the deployment served our build-info.json: vercel list (what serves now,
        # the rollback target), then vercel promote
        "GET /v6/deployments",
        "GET /v13/deployments/dpl_2", "POST /v10/projects/prj_1/promote/dpl_2",
        "GET /v13/deployments/dpl_2",
    ], paths
    assert paths[:3] == ["GET /v2/user", "GET /v9/projects/prj_1",
                         "GET /v3/env/pull/prj_1/production"]
    assert "POST /v10/projects/prj_1/promote/dpl_2" in vercel.paths()
    assert any("prebuilt=1" in path for method, path in vercel.calls if method == "POST")
    assert vercel.tokens == {TOKEN}
    assert vercel.production == "dpl_2" != previous
    assert vercel.serve(None, "/build-info.json") == identity("new")
    assert vercel.serve(None, "/docs/intro/index.html") == b"<html>intro new</html>"
    out = capsys.readouterr().out
    assert f"artifact vercel-deployment: https://{vercel.hosts['dpl_2']} (id dpl_2" in out
    everything = recorded()
    assert f"https://{vercel.hosts['dpl_2']}" in everything  # the artifact's uri
    assert "'vercel-deployment'" in everything and "'succeeded'" in everything
    # Nothing the run wrote holds the token: output, records, logs, the CLI's own files.
    written = [p.read_text(errors="replace") for p in
               Path(vercel_env["DATA_DIR"]).rglob("*") if p.is_file() and p.suffix != ".db"]
    assert TOKEN not in out + everything + "".join(written)


@cli_runs
def test_an_api_500_exits_1_and_nothing_is_promoted(
    vercel: FakeVercel, vercel_env: dict[str, str], capsys: pytest.CaptureFixture[str],
) -> None:
    previous = vercel.seed({"index.html": b"old", "build-info.json": identity("old")})
    vercel.fail_create = True
    assert deploy() == 1
    assert "vercel deploy exited 1" in capsys.readouterr().err
    assert not any("promote" in path for path in vercel.paths())
    assert vercel.production == previous and list(vercel.deployments) == [previous]


@cli_runs
def test_a_deployment_that_never_gets_ready_exits_1_and_nothing_is_promoted(
    vercel: FakeVercel, vercel_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    previous = vercel.seed({"index.html": b"old", "build-info.json": identity("old")})
    vercel.ready = False
    monkeypatch.setenv("VERCEL_DEPLOY_TIMEOUT", "8")
    get_settings.cache_clear()
    assert deploy() == 1
    assert "vercel deploy did not finish in 8s" in capsys.readouterr().err
    assert not any("promote" in path for path in vercel.paths())
    assert vercel.production == previous


@cli_runs
def test_a_deployment_that_serves_another_build_is_not_promoted(
    vercel: FakeVercel, vercel_env: dict[str, str], capsys: pytest.CaptureFixture[str],
) -> None:
    previous = vercel.seed({"index.html": b"old", "build-info.json": identity("old")})
    vercel.serves_another_build = lambda deployment: deployment == "dpl_2"
    assert deploy() == 1
    assert "serves build" in capsys.readouterr().err
    assert vercel.production == previous


@cli_runs
def test_production_that_does_not_serve_the_build_after_promote_is_rolled_back(
    vercel: FakeVercel, vercel_env: dict[str, str], capsys: pytest.CaptureFixture[str],
) -> None:
    previous = vercel.seed({"index.html": b"old", "build-info.json": identity("old")})
    vercel.serves_another_build = (
        lambda deployment: deployment is None and vercel.production == "dpl_2")
    assert deploy() == 1
    output = capsys.readouterr()
    assert "serves build" in output.err
    assert f"rolling back: roll production back to https://{vercel.hosts[previous]}" in output.out
    assert "POST /v10/projects/prj_1/promote/dpl_2" in vercel.paths()
    assert f"POST /v9/projects/prj_1/rollback/{previous}" in vercel.paths()
    assert vercel.production == previous


@cli_runs
def test_rollback_returns_production_to_the_deployment_before(
    vercel: FakeVercel, vercel_env: dict[str, str], capsys: pytest.CaptureFixture[str],
) -> None:
    first = vercel.seed({"index.html": b"old", "build-info.json": identity("old")})
    assert deploy() == 0
    vercel.calls.clear()
    code = cli.main(["rollback", "--service", "frontend", "--target", "vercel",
                     "--environment", "production", "--yes"])
    assert code == 0, capsys.readouterr()
    assert "GET /v6/deployments" in vercel.paths()  # vercel list: which one served before
    assert f"POST /v9/projects/prj_1/rollback/{first}" in vercel.paths()
    assert vercel.production == first
    assert vercel.serve(None, "/build-info.json") == identity("old")
    assert f"{vercel.site} serves git sha-old" in capsys.readouterr().out

    vercel.calls.clear()
    assert cli.main(["rollback", "--service", "frontend", "--target", "vercel",
                     "--environment", "production", "--yes", "--to", "dpl_2"]) == 0
    assert vercel.production == "dpl_2" and "GET /v6/deployments" not in vercel.paths()
    assert "GET /v13/deployments/dpl_2" in vercel.paths()  # vercel inspect: its URL
    assert f"{vercel.site} serves git sha-new" in capsys.readouterr().out

    assert cli.main(["rollback", "--service", "frontend", "--target", "vercel",
                     "--environment", "production", "--yes", "--to", "dpl_9"]) == 1
    assert "vercel inspect exited 1" in capsys.readouterr().err
    assert vercel.production == "dpl_2"


def test_missing_settings_exit_2_naming_them_before_any_call(
    vercel: FakeVercel, vercel_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("VERCEL_TOKEN")
    monkeypatch.delenv("VERCEL_PROJECT_ID")
    get_settings.cache_clear()
    assert deploy() == 2
    assert "needs VERCEL_TOKEN, VERCEL_PROJECT_ID" in capsys.readouterr().err
    assert vercel.calls == []


@cli_runs
def test_a_refused_token_exits_1_with_vercels_message_and_the_token_masked(
    vercel: FakeVercel, vercel_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong = "vercelwrongtoken123"
    assert cli.main(["run-migrations"]) == 0
    monkeypatch.setenv("VERCEL_TOKEN", wrong)
    get_settings.cache_clear()
    assert deploy() == 1
    output = capsys.readouterr()
    assert "vercel pull exited 1" in output.err
    assert "Could not retrieve Project Settings" in output.err  # the CLI's own message
    everything = recorded()
    assert "vercel pull exited 1" in everything
    assert wrong not in output.out + output.err + everything
    assert vercel.tokens == {wrong}
    assert vercel.deployments == {} and all(p.startswith("GET") for p in vercel.paths())


@pytest.mark.integration
def test_both_doors_print_the_same_plan_with_the_token_masked(
    vercel_env: dict[str, str],
) -> None:
    plan = same_through_both_doors(
        "deploy-frontend", "--target", "vercel", "--environment", "production", "--dry-run",
        env={**vercel_env, "FRONTEND_DIR": str(ROOT / "frontend")})
    assert "deploy --prebuilt --prod --skip-domain --yes --format=json" in plan
    assert "build-frontend:build" in plan and TOKEN not in plan


# --------------------------------------------------------------------------- vercel build


def test_vercel_json_leaves_one_build_path() -> None:
    config = json.loads((ROOT / "vercel.json").read_text())
    assert config["git"] == {"deploymentEnabled": False}
    assert config["outputDirectory"] == f"frontend/{build_frontend.OUTPUT_DIR}"
    assert config["installCommand"] == ""


def vercel_build(folder: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """`vercel build --prod` offline: vercel.json, the site, a hand-written project.json."""
    (folder / ".vercel").mkdir(parents=True, exist_ok=True)
    (folder / ".vercel" / "project.json").write_text(json.dumps(
        {"projectId": "prj_1", "orgId": "team_1", "settings": {"framework": None}}))
    shutil.copy2(ROOT / "vercel.json", folder / "vercel.json")
    if site.exists():
        shutil.copytree(site, folder / "frontend" / "build")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERCEL_")}
    return subprocess.run([str(VERCEL), "build", "--prod", "--yes"], cwd=folder, text=True,
                          capture_output=True, check=False,
                          env={**env, "VERCEL_TELEMETRY_DISABLED": "1"})


@cli_runs
def test_vercel_build_refuses_a_tree_build_frontend_did_not_record(tmp_path: Path) -> None:
    require_cli()
    write_site(tmp_path / "site", "x")
    (tmp_path / "site" / "build" / "build-info.json").unlink()
    result = vercel_build(tmp_path / "work", tmp_path / "site" / "build")
    assert result.returncode != 0
    assert "no recorded build" in result.stdout + result.stderr


@pytest.mark.integration
@pytest.mark.xdist_group("site-build")  # test_build_frontend's worker, which has the build
def test_vercel_build_packages_every_page_and_the_chat_widget(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from test_build_frontend import production_build

    require_cli()
    site = production_build(tmp_path_factory)  # build-frontend's own production build
    assert site.result.code == 0, site.result.out + site.result.err
    frontend = site.frontend
    folder = tmp_path_factory.mktemp("vercel-build")
    built = vercel_build(folder / "work", site.site)
    assert built.returncode == 0, built.stderr
    output = folder / "work" / ".vercel" / "output"
    config = json.loads((output / "config.json").read_text())
    assert config["version"] == 3
    assert any("immutable" in json.dumps(route.get("headers", {}))
               for route in config["routes"])
    static = output / "static"
    for source, candidates in build_frontend.expected_pages(frontend / "docs").items():
        assert any((static / candidate).is_file() for candidate in candidates), source
    bundles = "".join(path.read_text() for path in static.rglob("*.js"))
    assert "Cited sections" in bundles  # the chat widget
    assert "https://textbook-api-production.up.railway.app" in bundles
    info = json.loads((static / "build-info.json").read_text())
    assert info == json.loads((site.site / "build-info.json").read_text())
    assert len(info["site_sha256"]) == 64
