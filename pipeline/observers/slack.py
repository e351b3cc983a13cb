"""Slack: one message to an incoming webhook when a run ends (on when SLACK_WEBHOOK_URL is set).

The message carries the job, the operation, service, environment, target, git sha, duration and
URLs, and for a failure the failed step and its error; every line passes the redactor.
"""

from __future__ import annotations

import math
import urllib.error
from typing import Any

from pipeline.observers.base import (
    Delivery,
    Notifier,
    RunInfo,
    Transient,
    actions_log_url,
    failure_for,
)
from textbook_api.config import Settings

NAME = "slack"
ICONS = {"succeeded": ":white_check_mark:", "failed": ":x:", "cancelled": ":warning:"}


def observer(settings: Settings, run: RunInfo, delivery: Delivery) -> SlackObserver | None:
    """On for every recorded operation when SLACK_WEBHOOK_URL is set."""
    url = settings.slack_webhook_url.get_secret_value() if settings.slack_webhook_url else ""
    return SlackObserver(run, delivery, url, actions_log_url(settings)) if url else None


class SlackObserver(Notifier):
    name = NAME

    def __init__(self, run: RunInfo, delivery: Delivery, webhook_url: str,
                 log_url: str | None) -> None:
        super().__init__(run, delivery)
        # Imported here: most runs have no webhook, and slack_sdk's package takes a while.
        from slack_sdk.webhook import WebhookClient

        # No retries of its own: Delivery is the one retry policy.
        self._client = WebhookClient(webhook_url, timeout=math.ceil(delivery.timeout),
                                     retry_handlers=[])
        self._log_url = log_url

    def end(self, state: str, error: str | None, failed_step: str | None, seconds: float) -> None:
        self.delivery.send(lambda: self._post(message(self.run, state, error, failed_step,
                                                      seconds, self._log_url)))

    def _post(self, payload: dict[str, Any]) -> None:
        try:
            response = self._client.send(text=payload["text"], blocks=payload["blocks"])
        except (urllib.error.URLError, OSError) as error:  # no answer: refused, reset, timeout
            raise Transient(f"no answer: {getattr(error, 'reason', error)}") from None
        if response.status_code >= 300:
            raise failure_for(response.status_code, str(response.body)[:200],
                              response.headers.get("Retry-After")
                              or response.headers.get("retry-after"))


def message(run: RunInfo, state: str, error: str | None, failed_step: str | None,
            seconds: float, log_url: str | None) -> dict[str, Any]:
    """The webhook payload: a one-line `text` (what notifications show) and the details."""
    job_id = run.job_id()
    headline = (f"{ICONS.get(state, ':grey_question:')} {run.operation} {state}: "
                f"{run.service} on {run.environment} ({run.target})")
    fields = {
        "job": str(job_id) if job_id is not None else "not recorded",
        "operation": run.operation,
        "service": run.service,
        "environment": run.environment,
        "target": run.target,
        "git sha": run.git_sha or "unknown",
        "duration": f"{seconds:.1f}s",
    }
    if run.url:
        fields["url"] = run.url
    if log_url:
        fields["log"] = log_url
    if failed_step is not None:
        fields["failed step"] = failed_step
    if error is not None:
        fields["error"] = error
    redact = run.redact
    lines = [f"*{name}*: {value}" for name, value in fields.items()]
    return {
        "text": redact(headline),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": redact(headline)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": redact("\n".join(lines))}},
        ],
    }
