"""The Vercel target: the site as a prebuilt Vercel deployment, promoted once it proves itself.

One build path: vercel.json turns Vercel's own Git builds off (`git.deploymentEnabled: false`)
and its buildCommand only checks that a recorded build is there, so what Vercel serves is the
tree build-frontend built, validated and recorded. The flow is the one Vercel documents for CI:
`vercel pull`, `vercel build` (which packages the site build-frontend built as Build Output
API v3 with vercel.json's headers and clean URLs), `vercel deploy --prebuilt`, then a check
that the deployment serves our `build-info.json`. Production deploys with `--skip-domain`, so
nothing moves to the production domains until `vercel promote` after that check: a failed or
stuck deploy leaves the previous deployment serving.

The CLI is pinned in tools/vercel and installed from its lock (see CLI_INSTALL). It reads
VERCEL_TOKEN, VERCEL_ORG_ID and VERCEL_PROJECT_ID from its environment, so the token never goes
on argv.
It runs in a work folder under DATA_DIR, so what `vercel pull` writes (.vercel/, the project's
environment variables) stays out of the repository.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess  # nosec B404: the pinned Vercel CLI, fixed arguments, no shell
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from pipeline.core import OptionValue, Run, Step, composed
from pipeline.deploy_config import DEPLOY_CONFIG
from pipeline.errors import OperationFailed, UsageError
from pipeline.operations.build_frontend import (
    BUILD_INFO,
    npm_folder_lock,
    provide_node_modules,
    select_profile,
)
from pipeline.targets.base import Target
from textbook_api.config import Settings

ROOT = Path(__file__).resolve().parents[2]
CLI_DIR = ROOT / "tools" / "vercel"
VERCEL_JSON = ROOT / "vercel.json"
PRODUCTION = "production"
LIST_ARGS = ("list", "--environment", PRODUCTION, "--status", "READY", "--format", "json")


def vercel_environment(environment: str) -> str:
    """Vercel knows production and preview: every other environment deploys as a preview."""
    return PRODUCTION if environment == PRODUCTION else "preview"


def https(url: str) -> str:
    """A deployment URL as `vercel list` prints it (host/path, no scheme) made fetchable."""
    return url if "://" in url else "https://" + url


# From the lock, which it leaves as it is. Not `npm ci`: the lock cannot hold the CLI's native
# packages for other platforms (npm resolves only this one's), and `npm ci` refuses it for that.
CLI_INSTALL = ("install", "--no-save", "--no-audit", "--no-fund")


@dataclass
class VercelRelease:
    """What the deploy's (or rollback's) steps hand each other."""

    identity: dict[str, Any] | None = None  # the build-info.json being deployed
    deployment: str | None = None  # its id
    url: str | None = None


class VercelTarget(Target):
    name = "vercel"
    summary = "the site on Vercel (prebuilt deploys with the pinned CLI, VERCEL_* settings)"
    services = ("frontend",)

    def __init__(self, settings: Settings, options: Mapping[str, OptionValue]) -> None:
        super().__init__(settings, options)
        self.site_url = select_profile(settings, self.environment, DEPLOY_CONFIG).site_url
        self.vercel_environment = vercel_environment(self.environment)
        self.production = self.vercel_environment == PRODUCTION
        self.work = settings.data_dir.resolve() / "deploy" / self.environment / "vercel"
        self.verify_gate = replace(self.gate, path="/" + BUILD_INFO)

    def context(self) -> dict[str, str]:
        return {**super().context(), "project": self.settings.vercel_project_id or "?",
                "vercel": self.vercel_environment, "url": self.site_url}

    def health_url(self, service: str) -> str | None:
        return self.site_url + "/" if self.production else None

    def preflight(self, services: tuple[str, ...]) -> None:
        self.require_settings({
            "VERCEL_TOKEN": self.settings.vercel_token,
            "VERCEL_ORG_ID": self.settings.vercel_org_id,
            "VERCEL_PROJECT_ID": self.settings.vercel_project_id,
        })

    # The CLI.

    def _argv(self, *args: str) -> list[str]:
        api = ("--api", self.settings.vercel_api_url) if self.settings.vercel_api_url else ()
        return [str(CLI_DIR / "node_modules" / ".bin" / "vercel"), *api, *args]

    def _show(self, *args: str) -> str:
        return "vercel " + shlex.join(self._argv(*args)[1:])

    def _env(self) -> dict[str, str]:
        token = self.settings.vercel_token
        return {
            **os.environ,
            "VERCEL_TOKEN": token.get_secret_value() if token else "",
            "VERCEL_ORG_ID": str(self.settings.vercel_org_id),
            "VERCEL_PROJECT_ID": str(self.settings.vercel_project_id),
            "VERCEL_TELEMETRY_DISABLED": "1",
            "NO_UPDATE_NOTIFIER": "1",
        }

    def _vercel(self, run: Run, *args: str, timeout: float = 300.0) -> str:
        """Run the CLI in the work folder; its stderr (progress) is shown, stdout returned."""
        self.work.mkdir(parents=True, exist_ok=True)
        try:
            result = subprocess.run(  # nosec B603: the pinned CLI, fixed arguments, no shell
                self._argv(*args), cwd=self.work, env=self._env(), capture_output=True,
                text=True, errors="replace", timeout=timeout, check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise OperationFailed(f"vercel {args[0]} did not finish in {timeout:g}s") from None
        for line in result.stderr.splitlines():
            if line.strip():
                run.console.print(f"    | {line.rstrip()}")
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            said = next((line for line in reversed(lines) if "Error" in line), "")
            raise OperationFailed(f"vercel {args[0]} exited {result.returncode}:"
                                  f" {said or ' / '.join(lines[-3:])}")
        return result.stdout

    def _install_step(self) -> Step:
        def npm_install() -> None:
            npm = shutil.which("npm")
            if npm is None:
                raise UsageError("npm is not on PATH: it installs the Vercel CLI")
            result = subprocess.run(  # nosec B603: npm from PATH, fixed arguments
                [npm, *CLI_INSTALL], cwd=CLI_DIR, capture_output=True,
                text=True, check=False, stdin=subprocess.DEVNULL,
            )
            if result.returncode != 0:
                raise OperationFailed(f"npm install in {CLI_DIR} exited {result.returncode}:"
                                      f" {result.stderr.strip()[-500:]}")

        def install(run: Run) -> None:
            with npm_folder_lock(CLI_DIR):
                reason = provide_node_modules(CLI_DIR, self.settings.node_modules_cache,
                                              npm_install)
            if reason is not None:
                run.console.print(f"    skipped: {reason}")

        return Step("install-cli", f"cd {CLI_DIR.relative_to(ROOT)} && npm {' '.join(CLI_INSTALL)}"
                    " (skipped when node_modules matches package-lock.json; a copy from"
                    f" {self.settings.node_modules_cache} when it holds one)", install)

    # Checking what a URL serves.

    def _served(self, base_url: str, what: str) -> dict[str, Any]:
        """The build-info.json base_url serves, once it answers 2xx."""
        self.verify_gate.wait(base_url, what)
        url = base_url.rstrip("/") + "/" + BUILD_INFO
        try:
            answer = httpx.get(url, timeout=self.verify_gate.timeout).json()
        except (httpx.HTTPError, ValueError) as error:
            raise OperationFailed(f"{url} is not the build's identity: {error}") from None
        if not isinstance(answer, dict):
            raise OperationFailed(f"{url} is not the build's identity: {answer!r}")
        return answer

    def _verify(self, base_url: str, identity: Mapping[str, Any], what: str) -> str:
        served = self._served(base_url, what)
        if served != dict(identity):
            raise OperationFailed(f"{what} at {base_url} serves build {served} instead of"
                                  f" {dict(identity)}")
        return f"{base_url} serves git {identity.get('git_sha')}, site" \
               f" {identity.get('site_sha256')}"

    def _production_deployments(self, run: Run) -> tuple[list[str], int | None]:
        """Ready production deployments' URLs, newest first, and the index of the one whose
        build production serves now (None: production serves none of them, or nothing)."""
        listed = json.loads(self._vercel(run, *LIST_ARGS))
        urls = [https(str(found["url"])) for found in listed.get("deployments") or []]
        try:
            serving = self._served(self.site_url, "production")
        except OperationFailed:
            return urls, None
        for index, url in enumerate(urls):
            if self._served(url, f"deployment {url}") == serving:
                return urls, index
        return urls, None

    def _roll_back_to(self, run: Run, target: str) -> None:
        self._vercel(run, "rollback", target, "--yes",
                     f"--timeout={self.settings.vercel_deploy_timeout:g}s")

    # Deploy.

    def deploy_steps(self, service: str) -> list[Step]:
        from pipeline.operations import build_frontend  # the operations import the registry

        built = self.settings.site_build_dir
        build = [] if self.options.get("prebuilt") else composed(
            build_frontend.OPERATION, self.settings, environment=self.environment)
        prod = ("--prod",) if self.production else ()
        deploy_args = ("deploy", "--prebuilt", *prod,
                       *(("--skip-domain",) if self.production else ()), "--yes",
                       "--format=json")
        state = VercelRelease()

        def stage(run: Run) -> None:
            info = built / BUILD_INFO
            if not info.is_file():
                raise OperationFailed(f"{info} is missing: the site was not built by"
                                      " build-frontend (drop --prebuilt to build it)")
            state.identity = json.loads(info.read_text(encoding="utf-8"))
            shutil.rmtree(self.work, ignore_errors=True)
            (self.work / "frontend").mkdir(parents=True)
            shutil.copy2(VERCEL_JSON, self.work / VERCEL_JSON.name)
            shutil.copytree(built, self.work / "frontend" / build_frontend.OUTPUT_DIR)
            run.console.print(f"    git {state.identity.get('git_sha')},"
                              f" site {state.identity.get('site_sha256')}")

        def pull(run: Run) -> None:
            self._vercel(run, "pull", "--yes", f"--environment={self.vercel_environment}")

        def package(run: Run) -> None:
            self._vercel(run, "build", *prod, "--yes")
            output = self.work / ".vercel" / "output"
            config = json.loads((output / "config.json").read_text(encoding="utf-8"))
            packaged = json.loads((output / "static" / BUILD_INFO).read_text(encoding="utf-8"))
            if config.get("version") != 3 or packaged != state.identity:
                raise OperationFailed(f"{output} does not hold the recorded build")

        def deploy(run: Run) -> None:
            answer = self._vercel(run, *deploy_args,
                                  timeout=self.settings.vercel_deploy_timeout)
            try:
                found = json.loads(answer)
                state.deployment, state.url = str(found["id"]), str(found["url"])
            except (ValueError, KeyError, TypeError):
                raise OperationFailed(f"vercel deploy answered no deployment: {answer[-300:]}"
                                      ) from None
            run.console.print(f"    deployment {state.deployment}: {state.url}")

        def verify(run: Run) -> None:
            if state.url is None or state.identity is None:
                raise OperationFailed("no deployment was made")
            checked = self._verify(state.url, state.identity,
                                   f"Vercel deployment {state.deployment}")
            run.console.print(f"    {checked}")
            run.reference("vercel-deployment", state.url, id=str(state.deployment),
                          environment=self.vercel_environment,
                          git_sha=str(state.identity.get("git_sha")),
                          site_sha256=str(state.identity.get("site_sha256")))

        def promote(run: Run) -> None:
            if state.identity is None:
                raise OperationFailed("no deployment was made")
            urls, serving = self._production_deployments(run)
            if serving is not None:
                before = urls[serving]
                run.on_failure(f"roll production back to {before}",
                               lambda: self._roll_back_to(run, before))
            self._vercel(run, "promote", str(state.deployment), "--yes",
                         f"--timeout={self.settings.vercel_deploy_timeout:g}s")
            checked = self._verify(self.site_url, state.identity,
                                   f"production ({state.deployment})")
            run.console.print(f"    {checked}")

        steps = [
            self.lock_step(service),
            *build,
            self._install_step(),
            Step("stage", f"{self.work}: vercel.json and a copy of {built} (with its"
                 f" {BUILD_INFO})", stage),
            Step("pull", self._show("pull", "--yes",
                                    f"--environment={self.vercel_environment}"), pull),
            Step("build", self._show("build", *prod, "--yes") + " (packages the recorded"
                 " build as .vercel/output)", package),
            Step("deploy", self._show(*deploy_args), deploy),
            Step("verify", f"GET <deployment url>/{BUILD_INFO} until 2xx, then it must be"
                 " the build's", verify),
        ]
        if self.production:
            steps.append(Step("promote", f"{self._show(*LIST_ARGS)} (the deployment serving now,"
                              " the rollback target); " + self._show("promote")
                              + " <deployment id> --yes"
                              + f"; then {self.site_url}/{BUILD_INFO} must be the build's",
                              promote))
        return steps

    # Rollback.

    def rollback_steps(self, service: str, to: str | None) -> list[Step]:
        if not self.production:
            raise UsageError("Vercel rolls back production only: use --environment production")
        chosen: list[str] = [to] if to else []
        state = VercelRelease()

        def choose(run: Run) -> None:
            if chosen:
                return
            urls, serving = self._production_deployments(run)
            if serving is None or serving + 1 >= len(urls):
                raise OperationFailed("no earlier ready production deployment to roll back to")
            chosen.append(urls[serving + 1])
            run.console.print(f"    from {urls[serving]} back to {urls[serving + 1]}")

        def roll_back(run: Run) -> None:
            target = chosen[0]
            url = target
            if "." not in target and "/" not in target:  # an id: its URL from the API
                inspected = self._vercel(run, "inspect", target, "--format=json")
                try:
                    url = str(json.loads(inspected)["url"])
                except (ValueError, KeyError, TypeError):
                    raise OperationFailed(f"vercel inspect {target} answered no URL:"
                                          f" {inspected[-300:]}") from None
            # What production must serve once it is back: that deployment's own build.
            state.identity = self._served(https(url), f"deployment {target}")
            self._roll_back_to(run, target)

        def verify(run: Run) -> None:
            if state.identity is None:
                raise OperationFailed("no deployment was rolled back to")
            checked = self._verify(self.site_url, state.identity, "production")
            run.console.print(f"    {checked}")

        return [
            self.lock_step(service),
            self._install_step(),
            Step("choose", f"the deployment to return to: {to or 'the one before production'}"
                 f" ({self._show(*LIST_ARGS)})", choose),
            Step("rollback", f"GET <its url>/{BUILD_INFO}; "
                 + self._show("rollback", to or "<deployment>", "--yes"), roll_back),
            Step("verify", f"{self.site_url}/{BUILD_INFO} must be that deployment's build",
                 verify),
        ]
