"""The railway target against a stand-in for Railway's GraphQL API on 127.0.0.1.

Railway cannot be reached from here, so `FakeRailway` answers the queries the target sends, keeps
deployments with a status each, and serves the deployed service's `/ready` itself: an image
whose name contains "broken" answers 503. Migrations, the audit trail and the doors are real.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import text

from conftest import Reply, Request, same_through_both_doors, stand_in
from pipeline import cli
from textbook_api.config import get_settings
from textbook_api.db import build_engine

TOKEN = "railway-canary-7d1f0a9c"
IMAGE = "registry.test/textbook-api:0123abc"


@dataclass
class FakeRailway:
    url: str = ""
    # Statuses a new deployment goes through, one per poll; the last one stays.
    statuses: list[str] = field(default_factory=lambda: ["BUILDING", "DEPLOYING", "SUCCESS"])
    # (HTTP status, headers) for the next GraphQL requests, before answering normally.
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    serving: str | None = None
    image: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    tokens: list[str | None] = field(default_factory=list)

    def seed(self, image: str) -> str:
        deployment = f"d{len(self.deployments)}"
        self.deployments[deployment] = {"image": image, "polls": 0, "final": "SUCCESS",
                                        "created": len(self.deployments)}
        self.serving = deployment
        return deployment

    def status(self, deployment: str) -> str:
        found = self.deployments[deployment]
        if "statuses" not in found:
            return str(found["final"])
        status = found["statuses"][min(found["polls"], len(found["statuses"]) - 1)]
        found["polls"] += 1
        if status == "SUCCESS":
            found["final"] = status
            self.serving = deployment
        return str(status)

    def graphql(self, query: str, variables: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        operation = re.search(r"(query|mutation) (\w+)", query)
        name = operation.group(2) if operation else "?"
        self.calls.append((name, variables))
        if self.script:
            status, headers = self.script.pop(0)
            return status, headers, {"errors": [{"message": f"HTTP {status} from the fake"}]}
        if name == "UpdateImage":
            self.image = variables["image"]
            return 200, {}, {"data": {"serviceInstanceUpdate": True}}
        if name == "Deploy":
            deployment = f"d{len(self.deployments)}"
            self.deployments[deployment] = {"image": self.image, "polls": 0, "final": "QUEUED",
                                            "statuses": list(self.statuses),
                                            "created": len(self.deployments)}
            return 200, {}, {"data": {"serviceInstanceDeployV2": deployment}}
        if name == "Deployment":
            deployment = variables["id"]
            return 200, {}, {"data": {"deployment": {
                "id": deployment, "status": self.status(deployment), "url": "api.up.test"}}}
        if name == "Deployments":
            done = sorted((d for d, v in self.deployments.items() if v["final"] == "SUCCESS"),
                          key=lambda d: -int(self.deployments[d]["created"]))
            edges = [{"node": {"id": d, "status": "SUCCESS", "createdAt":
                               f"2026-11-23T00:00:{self.deployments[d]['created']:02d}Z"}}
                     for d in done]
            return 200, {}, {"data": {"deployments": {"edges": edges}}}
        if name == "Rollback":
            deployment = variables["id"]
            if deployment not in self.deployments:
                return 200, {}, {"errors": [{"message": f"Deployment {deployment} not found"}]}
            self.deployments[deployment].pop("statuses", None)
            self.serving = deployment
            return 200, {}, {"data": {"deploymentRollback": True}}
        return 400, {}, {"errors": [{"message": f"unknown operation {name}"}]}

    def ready(self) -> int:
        if self.serving is None:
            return 404
        return 503 if "broken" in self.deployments[self.serving]["image"] else 200

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def railway() -> Iterator[FakeRailway]:
    """GraphQL on POST; GET serves the deployed service's /ready."""
    fake = FakeRailway()

    def respond(request: Request) -> Reply:
        if request.method == "GET":
            status = fake.ready()
            return status, {}, {"status": "ready" if status == 200 else "not ready"}
        fake.tokens.append(request.headers.get("Project-Access-Token"))
        return fake.graphql(request.body["query"], request.body.get("variables") or {})

    with stand_in(respond) as url:
        fake.url = url
        yield fake


@pytest.fixture
def railway_env(
    railway: FakeRailway, settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    env = {
        **settings_env,
        "RAILWAY_TOKEN": TOKEN,
        "RAILWAY_PROJECT_ID": "project-1",
        "RAILWAY_ENVIRONMENT_ID": "environment-1",
        "RAILWAY_SERVICE_ID": "service-1",
        "RAILWAY_PUBLIC_URL": railway.url,
        "RAILWAY_API_URL": f"{railway.url}/graphql/v2",
        "RAILWAY_POLL_INTERVAL": "0.01",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return env


def deploy(*args: str) -> int:
    return cli.main(["deploy-backend", "--target", "railway", "--environment", "staging",
                     "--health-attempts", "3", "--health-interval-ms", "10", *args])


def jobs() -> list[tuple[int, str, str, str, str | None]]:
    engine = build_engine(get_settings().sqlalchemy_url)
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT id, operation, target, state, error FROM deployment_job ORDER BY id")).all()
        artifacts = connection.execute(text("SELECT kind, uri FROM deployment_artifact")).all()
    engine.dispose()
    jobs.artifacts = [(row.kind, row.uri) for row in artifacts]  # type: ignore[attr-defined]
    return [(row.id, row.operation, row.target, row.state, row.error) for row in rows]


def test_a_deploy_migrates_points_the_service_at_the_image_waits_and_gates(
    railway: FakeRailway, railway_env: dict[str, str], capsys: pytest.CaptureFixture[str],
) -> None:
    railway.seed("registry.test/textbook-api:previous")
    assert deploy("--image", IMAGE) == 0
    assert railway.names() == ["Deployments", "UpdateImage", "Deploy", "Deployment",
                               "Deployment", "Deployment"]
    assert railway.calls[1][1] == {"image": IMAGE, "serviceId": "service-1",
                                   "environmentId": "environment-1"}
    assert set(railway.tokens) == {TOKEN}
    assert railway.serving == "d1" and railway.ready() == 200
    *_, (job_id, operation, target, state, _) = jobs()
    assert (operation, target, state) == ("deploy-backend", "railway", "succeeded")
    recorded = jobs.artifacts  # type: ignore[attr-defined]
    assert ("railway-deployment", "railway://project-1/service-1/d1") in recorded
    output = capsys.readouterr()
    assert "run-migrations:upgrade" in output.out and TOKEN not in output.out + output.err


@pytest.mark.parametrize("ending", ["FAILED", "CRASHED"])
def test_a_deployment_that_fails_exits_1_and_the_previous_one_serves_again(
    railway: FakeRailway, railway_env: dict[str, str], ending: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    previous = railway.seed("registry.test/textbook-api:previous")
    railway.statuses = ["BUILDING", ending]
    assert deploy("--image", IMAGE) == 1
    assert f"Railway deployment d1 ended {ending}" in capsys.readouterr().err
    assert ("Rollback", {"id": previous}) in railway.calls
    assert railway.serving == previous
    assert jobs()[-1][3] == "failed"


def test_a_deployment_that_never_serves_times_out_and_rolls_back(
    railway: FakeRailway, railway_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    previous = railway.seed("registry.test/textbook-api:previous")
    railway.statuses = ["DEPLOYING"]
    monkeypatch.setenv("RAILWAY_DEPLOY_TIMEOUT", "0.3")
    get_settings.cache_clear()
    assert deploy("--image", IMAGE) == 1
    assert "still DEPLOYING after 0.3s" in capsys.readouterr().err
    assert railway.serving == previous


def test_a_release_that_fails_its_gate_is_rolled_back(
    railway: FakeRailway, railway_env: dict[str, str], capsys: pytest.CaptureFixture[str],
) -> None:
    previous = railway.seed("registry.test/textbook-api:previous")
    assert deploy("--image", "registry.test/textbook-api:broken") == 1
    assert "failed its health gate" in capsys.readouterr().err
    names = railway.names()
    assert names.index("Rollback") > names.index("Deploy")
    assert ("Rollback", {"id": previous}) in railway.calls
    assert railway.serving == previous and railway.ready() == 200


def test_429_is_retried_after_the_time_it_asks_and_401_is_not_retried(
    railway: FakeRailway, railway_env: dict[str, str], capsys: pytest.CaptureFixture[str],
) -> None:
    railway.seed("registry.test/textbook-api:previous")
    railway.script = [(429, {"Retry-After": "0"}), (503, {"Retry-After": "0"})]
    assert deploy("--image", IMAGE) == 0
    assert railway.names()[:3] == ["Deployments", "Deployments", "Deployments"]

    railway.calls.clear()
    railway.script = [(401, {})]
    assert deploy("--image", IMAGE) == 1
    err = capsys.readouterr().err
    assert "Railway refused the request (HTTP 401): HTTP 401 from the fake" in err
    assert railway.names() == ["Deployments"]


def test_rollback_returns_to_the_deployment_served_before(
    railway: FakeRailway, railway_env: dict[str, str],
) -> None:
    railway.seed("registry.test/textbook-api:first")
    assert deploy("--image", IMAGE) == 0
    railway.calls.clear()
    code = cli.main(["rollback", "--target", "railway", "--environment", "staging",
                     "--health-attempts", "3", "--health-interval-ms", "10"])
    assert code == 0
    assert ("Rollback", {"id": "d0"}) in railway.calls and railway.serving == "d0"
    assert cli.main(["rollback", "--target", "railway", "--to", "d9",
                     "--health-attempts", "1"]) == 1


def test_missing_settings_exit_2_naming_them_before_any_request(
    railway: FakeRailway, railway_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("RAILWAY_TOKEN")
    monkeypatch.delenv("RAILWAY_SERVICE_ID")
    get_settings.cache_clear()
    assert deploy("--image", IMAGE) == 2
    assert "needs RAILWAY_TOKEN, RAILWAY_SERVICE_ID" in capsys.readouterr().err
    monkeypatch.setenv("RAILWAY_TOKEN", TOKEN)
    monkeypatch.setenv("RAILWAY_SERVICE_ID", "service-1")
    get_settings.cache_clear()
    # Without --image the deploy builds and pushes this commit's image first: that needs an
    # engine and a registry, checked before anything starts.
    monkeypatch.delenv("IMAGE_REGISTRY", raising=False)
    get_settings.cache_clear()
    assert deploy() == 2
    expected = ("--push needs IMAGE_REGISTRY" if shutil.which("podman") or shutil.which("docker")
                else "no container engine")
    assert expected in capsys.readouterr().err
    assert railway.calls == []


def test_without_image_the_plan_builds_and_pushes_this_commits_image_first(
    railway_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if not (shutil.which("podman") or shutil.which("docker")):
        pytest.skip("no container engine (apt-get install -y podman)")
    monkeypatch.setenv("IMAGE_REGISTRY", "127.0.0.1:5999/textbook")
    get_settings.cache_clear()
    assert deploy("--dry-run") == 0
    plan = capsys.readouterr().out
    steps = re.findall(r"^\s+\d+\. (\S+)", plan, re.M)
    assert steps.index("build-image:push") < steps.index("image") < steps.index("deploy")
    assert "source image the pushed build (by digest)" in plan


@pytest.mark.integration
def test_both_doors_print_the_same_plan_with_the_token_masked(
    railway_env: dict[str, str],
) -> None:
    plan = same_through_both_doors("deploy-backend", "--target", "railway", "--environment",
                                   "staging", "--image", IMAGE, "--dry-run", env=railway_env)
    assert "serviceInstanceDeployV2 service-1" in plan and TOKEN not in plan
