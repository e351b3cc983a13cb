"""GitHub Deployments: a deployment per run of an operation that deploys, with its statuses.

On when GITHUB_TOKEN and GITHUB_REPOSITORY are set (GITHUB_API_URL picks another API). At the
start: the deployment (ref = the git sha, `auto_merge` off, no required contexts), then
`in_progress`; at the end `success` or `failure` with the environment's URL and the run's log
URL. The deployment it replaces (the last successful one of the same service in the same
environment, found before the run) is marked `inactive` on success: that is what a rollback
leaves behind. GitHub's own auto-inactivation is off because services share an environment and
one service's deploy must not retire the other's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pipeline.observers.base import (
    Delivery,
    NotDelivered,
    Notifier,
    RunInfo,
    Transient,
    actions_log_url,
    failure_for,
)
from textbook_api.config import Settings

if TYPE_CHECKING:
    from githubkit import GitHub
    from githubkit_schemas.latest.types import (
        ReposOwnerRepoDeploymentsDeploymentIdStatusesPostBodyType as StatusBody,
    )

NAME = "github"
# How far back to look for the deployment a run replaces (newest first).
REPLACED_SEARCH_DEPTH = 10


def observer(settings: Settings, run: RunInfo, delivery: Delivery) -> GitHubObserver | None:
    """On for operations that deploy, when GITHUB_TOKEN and GITHUB_REPOSITORY are set."""
    token = settings.github_token.get_secret_value() if settings.github_token else ""
    if not (run.deploys and token and settings.github_repository):
        return None
    return GitHubObserver(run, delivery, token=token, repository=settings.github_repository,
                          api_url=settings.github_api_url, log_url=actions_log_url(settings))


class GitHubObserver(Notifier):
    name = NAME

    def __init__(self, run: RunInfo, delivery: Delivery, *, token: str, repository: str,
                 api_url: str | None, log_url: str | None) -> None:
        super().__init__(run, delivery)
        self._token = token
        self._owner, self._repo = repository.split("/", 1)
        self._api_url = api_url or None
        self._log_url = log_url
        self._client: GitHub[Any]  # made at the start of the run
        self._task = f"deploy:{run.service}"
        self._deployment: int | None = None
        self._replaced: int | None = None

    def begin(self) -> None:
        if not self.run.git_sha:
            raise NotDelivered("no git sha to deploy (not a git checkout, GITHUB_SHA unset)")
        import githubkit  # imported here: it takes a second, and most runs never call it

        self._client = githubkit.GitHub(
            self._token,
            base_url=self._api_url,
            timeout=self.delivery.timeout,
            auto_retry=False,  # Delivery is the one retry policy
            http_cache=False,
        )
        self._replaced = self._last_successful()
        created = self._call(lambda: self._client.rest.repos.create_deployment(
            self._owner, self._repo, data={
                "ref": str(self.run.git_sha),
                "environment": self.run.environment,
                "task": self._task,
                "auto_merge": False,
                "required_contexts": [],
                "description": self.run.redact(
                    f"{self.run.operation}: {self.run.service} to {self.run.target}"
                ),
                "production_environment": self.run.environment == "production",
                "payload": {"operation": self.run.operation, "target": self.run.target},
            }))
        self._deployment = int(created["id"])
        self._status(self._deployment, "in_progress", f"{self.run.operation} started")

    def end(self, state: str, error: str | None, failed_step: str | None, seconds: float) -> None:
        if self._deployment is None:
            return  # begin failed and said so
        if state == "succeeded":
            self._status(self._deployment, "success", f"{self.run.operation} succeeded "
                         f"in {seconds:.1f}s")
            if self._replaced is not None:
                self._status(self._replaced, "inactive", f"replaced by {self._deployment}")
            return
        # The error starts with the failed step's name.
        what = f"{self.run.operation} {state}" + (f": {error}" if error else "")
        self._status(self._deployment, "failure", what)

    def _last_successful(self) -> int | None:
        deployments = self._call(lambda: self._client.rest.repos.list_deployments(
            self._owner, self._repo, environment=self.run.environment, task=self._task,
            per_page=REPLACED_SEARCH_DEPTH))
        for deployment in deployments:
            identifier = int(deployment["id"])
            statuses = self._call(lambda: self._client.rest.repos.list_deployment_statuses(
                self._owner, self._repo, identifier, per_page=1))
            if statuses and statuses[0]["state"] == "success":
                return identifier
        return None

    def _status(
        self, deployment: int,
        state: Literal["in_progress", "success", "failure", "inactive"], description: str,
    ) -> None:
        data: StatusBody = {
            "state": state,
            # GitHub keeps 140 characters of a description.
            "description": self.run.redact(description)[:140],
            "auto_inactive": False,
        }
        if self.run.url:
            data["environment_url"] = self.run.url
        if self._log_url:
            data["log_url"] = self._log_url
        self._call(lambda: self._client.rest.repos.create_deployment_status(
            self._owner, self._repo, deployment, data=data))

    def _call(self, request: Callable[[], Any]) -> Any:
        """One API call through Delivery; its JSON body (githubkit's errors mapped to ours)."""
        from githubkit.exception import RequestError, RequestFailed

        def attempt() -> Any:
            try:
                return request().json()
            except RequestFailed as error:
                response = error.response
                raise failure_for(response.status_code, response.raw_response.reason_phrase,
                                  response.headers.get("Retry-After")) from None
            except RequestError as error:  # no answer: refused, reset, timed out
                raise Transient(f"no answer: {error}") from None

        return self.delivery.send(attempt)
