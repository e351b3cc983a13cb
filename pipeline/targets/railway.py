"""The Railway target: the API as a Railway service running a container image.

Railway's CLI cannot be installed here (its installer downloads a binary), so the target speaks
Railway's public GraphQL API over httpx: point the service at the image, deploy, poll the
deployment until it succeeds, then gate on the service's public `/ready`. A failed deploy or
gate rolls back to the deployment that served before. Migrations run first, from here, against
the Railway database (`DATABASE_URL`): a failed migration stops the deploy before any traffic
moves, and releases are written to run on the schema before and after each migration.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from pipeline.core import Option, OptionValue, Run, Step, composed
from pipeline.errors import OperationFailed, UsageError
from pipeline.operations.build_image import ImageBuild, git_revision, pushed_build
from pipeline.targets.base import Target
from textbook_api.config import Settings

RETRIES = 4
MAX_RETRY_WAIT_SECONDS = 30.0
# Deployment statuses: the first one means it serves, the others that it never will.
SUCCEEDED = "SUCCESS"
FAILED = ("FAILED", "CRASHED", "REMOVED", "SKIPPED")

UPDATE_IMAGE = """
mutation UpdateImage($serviceId: String!, $environmentId: String!, $image: String!) {
  serviceInstanceUpdate(serviceId: $serviceId, environmentId: $environmentId,
                        input: {source: {image: $image}})
}"""
DEPLOY = """
mutation Deploy($serviceId: String!, $environmentId: String!) {
  serviceInstanceDeployV2(serviceId: $serviceId, environmentId: $environmentId)
}"""
DEPLOYMENT = """
query Deployment($id: String!) {
  deployment(id: $id) { id status url }
}"""
SUCCESSFUL_DEPLOYMENTS = """
query Deployments($projectId: String!, $environmentId: String!, $serviceId: String!) {
  deployments(first: 10, input: {projectId: $projectId, environmentId: $environmentId,
                                 serviceId: $serviceId, status: {in: [SUCCESS]}}) {
    edges { node { id status createdAt } }
  }
}"""
ROLLBACK = """
mutation Rollback($id: String!) {
  deploymentRollback(id: $id)
}"""


class RailwayAPI:
    """GraphQL calls with a project token; retries on 429 and 5xx (Retry-After honoured, capped),
    none on other 4xx, and Railway's own error messages in the failure."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.url, self._token, self._timeout, self._sleep = url, token, timeout, sleep

    def call(self, query: str, **variables: str) -> dict[str, Any]:
        headers = {"Project-Access-Token": self._token, "Content-Type": "application/json"}
        problem = "no answer"
        for attempt in range(RETRIES + 1):
            wait = min(2.0 ** attempt, MAX_RETRY_WAIT_SECONDS)
            try:
                response = httpx.post(self.url, json={"query": query, "variables": variables},
                                      headers=headers, timeout=self._timeout)
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                if response.status_code == 429 or response.status_code >= 500:
                    problem = f"HTTP {response.status_code}"
                    wait = _retry_after(response, wait)
                elif response.is_error:
                    raise OperationFailed(
                        f"Railway refused the request (HTTP {response.status_code}):"
                        f" {_messages(response) or response.text[:300]}"
                    )
                else:
                    return _data(response)
            if attempt < RETRIES:
                self._sleep(wait)
        raise OperationFailed(f"Railway API at {self.url} failed {RETRIES + 1} times: {problem}")


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", default)), 0.0),
                   MAX_RETRY_WAIT_SECONDS)
    except ValueError:
        return default


def _messages(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return ""
    return "; ".join(str(error.get("message", error)) for error in errors
                     if isinstance(error, dict))


def _data(response: httpx.Response) -> dict[str, Any]:
    messages = _messages(response)
    if messages:
        raise OperationFailed(f"Railway: {messages}")
    try:
        data = response.json()["data"]
    except (ValueError, KeyError, TypeError):
        raise OperationFailed(f"Railway answered without data: {response.text[:300]}") from None
    if not isinstance(data, dict):
        raise OperationFailed(f"Railway answered without data: {response.text[:300]}")
    return data


@dataclass
class RailwayRelease:
    """What the deploy's steps hand each other."""

    previous: str | None = None  # the deployment serving before this run
    deployment: str | None = None
    url: str | None = None
    image: str = ""


class RailwayTarget(Target):
    name = "railway"
    summary = "the API as a Railway service (GraphQL API, RAILWAY_* settings)"
    services = ("backend",)
    own_options = (
        Option("image", "railway: an image already pushed to deploy (default: build-image"
               " --push of this commit)", None, "REF"),
    )

    def __init__(self, settings: Settings, options: Mapping[str, OptionValue]) -> None:
        super().__init__(settings, options)
        self.image = str(options.get("image") or "")

    def context(self) -> dict[str, str]:
        return {**super().context(), "service": self.settings.railway_service_id or "?",
                "url": self.public_url}

    @property
    def public_url(self) -> str:
        return self.settings.railway_public_url or "(RAILWAY_PUBLIC_URL unset)"

    def health_url(self, service: str) -> str | None:
        url = self.settings.railway_public_url
        return url.rstrip("/") + self.gate.path if url else None

    def preflight(self, services: tuple[str, ...]) -> None:
        self.require_settings({
            "RAILWAY_TOKEN": self.settings.railway_token,
            "RAILWAY_PROJECT_ID": self.settings.railway_project_id,
            "RAILWAY_ENVIRONMENT_ID": self.settings.railway_environment_id,
            "RAILWAY_SERVICE_ID": self.settings.railway_service_id,
            "RAILWAY_PUBLIC_URL": self.settings.railway_public_url,
        })

    def _api(self) -> RailwayAPI:
        token = self.settings.railway_token
        return RailwayAPI(self.settings.railway_api_url,
                          token.get_secret_value() if token else "",
                          timeout=self.settings.railway_request_timeout)

    def _ids(self) -> dict[str, str]:
        return {"serviceId": str(self.settings.railway_service_id),
                "environmentId": str(self.settings.railway_environment_id)}

    def _successful(self) -> list[str]:
        data = self._api().call(SUCCESSFUL_DEPLOYMENTS, projectId=str(
            self.settings.railway_project_id), **self._ids())
        edges = (data.get("deployments") or {}).get("edges") or []
        nodes = [edge["node"] for edge in edges if isinstance(edge, dict) and "node" in edge]
        nodes.sort(key=lambda node: str(node.get("createdAt", "")), reverse=True)
        return [str(node["id"]) for node in nodes]

    def _wait(self, deployment: str) -> str:
        """Poll the deployment until it serves; its URL, or exit 1 with its last status."""
        deadline = time.monotonic() + self.settings.railway_deploy_timeout
        status = "unknown"
        while time.monotonic() < deadline:
            found = self._api().call(DEPLOYMENT, id=deployment).get("deployment") or {}
            status = str(found.get("status"))
            if status == SUCCEEDED:
                return str(found.get("url") or "")
            if status in FAILED:
                raise OperationFailed(f"Railway deployment {deployment} ended {status}")
            time.sleep(self.settings.railway_poll_interval)
        raise OperationFailed(
            f"Railway deployment {deployment} still {status} after"
            f" {self.settings.railway_deploy_timeout:g}s"
        )

    def _roll_back_to(self, run: Run, deployment: str) -> None:
        self._api().call(ROLLBACK, id=deployment)
        self._wait(deployment)
        run.console.print(f"    Railway deployment {deployment} serves again")

    def _image_steps(self) -> tuple[ImageBuild | None, list[Step]]:
        """None and no steps for --image; else build-image --push of this commit."""
        if self.image:
            return None, []
        return pushed_build(self.settings, environment=self.environment, tag=git_revision())

    # Deploy.

    def deploy_steps(self, service: str) -> list[Step]:
        from pipeline.operations import run_migrations  # the operations import the registry

        if self.settings.database_url is None:
            raise UsageError("the railway target needs DATABASE_URL: the Railway database to"
                             " migrate before the deploy")
        state = RailwayRelease()
        service_id = self.settings.railway_service_id
        build, image_steps = self._image_steps()

        def current(run: Run) -> None:
            successful = self._successful()
            state.previous = successful[0] if successful else None
            run.console.print(f"    serving now: {state.previous or 'no deployment'}")

        def point(run: Run) -> None:
            image = build.pushed_ref if build is not None else self.image
            state.image = image
            self._api().call(UPDATE_IMAGE, image=image, **self._ids())
            run.console.print(f"    service {service_id} source: {image}")

        def deploy(run: Run) -> None:
            answer = self._api().call(DEPLOY, **self._ids())
            state.deployment = str(answer.get("serviceInstanceDeployV2") or "")
            if not state.deployment:
                raise OperationFailed("Railway started no deployment")
            if state.previous is not None:
                previous = state.previous
                run.on_failure(f"roll back to Railway deployment {previous}",
                               lambda: self._roll_back_to(run, previous))
            run.console.print(f"    deployment {state.deployment}")

        def wait(run: Run) -> None:
            if state.deployment is None:
                raise OperationFailed("no deployment was started")
            state.url = self._wait(state.deployment)
            run.reference("railway-deployment", f"railway://{self.settings.railway_project_id}"
                          f"/{service_id}/{state.deployment}", image=state.image,
                          url=state.url or self.public_url)

        def gate(run: Run) -> None:
            answer = self.gate.wait(self.public_url, f"Railway deployment {state.deployment}")
            run.console.print(f"    {answer[:120]}")

        return [
            self.lock_step(service),
            Step("current", "query the deployment serving now (the rollback target)", current),
            *composed(run_migrations.OPERATION, self.settings),
            *image_steps,
            Step("image", f"serviceInstanceUpdate {service_id}: source image"
                 f" {self.image or 'the pushed build (by digest)'}", point),
            Step("deploy", f"serviceInstanceDeployV2 {service_id}", deploy),
            Step("wait", f"poll the deployment until {SUCCEEDED} (at most"
                 f" {self.settings.railway_deploy_timeout:g}s)", wait),
            Step("gate", f"{self.gate.describe()} at {self.public_url}", gate),
        ]

    # Rollback.

    def rollback_steps(self, service: str, to: str | None) -> list[Step]:
        chosen: list[str] = [to] if to else []

        def choose(run: Run) -> None:
            if chosen:
                return
            successful = self._successful()
            if len(successful) < 2:
                raise OperationFailed("no earlier successful Railway deployment to roll back to")
            chosen.append(successful[1])
            run.console.print(f"    from {successful[0]} back to {successful[1]}")

        def roll_back(run: Run) -> None:
            self._roll_back_to(run, chosen[0])

        def gate(run: Run) -> None:
            answer = self.gate.wait(self.public_url, f"Railway deployment {chosen[0]}")
            run.console.print(f"    {answer[:120]}")

        return [
            self.lock_step(service),
            Step("choose", f"the deployment to return to: {to or 'the one served before'}",
                 choose),
            Step("rollback", "deploymentRollback, then poll it until it serves", roll_back),
            Step("gate", f"{self.gate.describe()} at {self.public_url}", gate),
        ]
