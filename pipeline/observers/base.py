"""What every notifying observer shares: the run it reports, bounded delivery, failure isolation.

A notification never changes a run's outcome: each request has a timeout, transient answers
(5xx, 429, no connection) are retried a bounded number of times with backoff, a refusal (other
4xx) is not retried, and whatever still fails becomes a warning (printed and recorded).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

from textbook_api.config import Settings
from textbook_api.redaction import Redactor

T = TypeVar("T")


@dataclass(frozen=True)
class RunInfo:
    """What a notification says about the run, known before it starts."""

    operation: str
    service: str
    environment: str
    target: str
    url: str | None  # where the environment serves (the plan's `url`), if it says
    git_sha: str | None
    deploys: bool  # the operation changes what the environment serves
    job_id: Callable[[], int | None]  # the database record's job, once it exists
    redact: Redactor
    warn: Callable[[str], None]  # printed and recorded; never raises


def actions_log_url(settings: Settings) -> str | None:
    """The GitHub Actions run's page, when the run happens inside one."""
    if settings.github_server_url and settings.github_repository and settings.github_run_id:
        server = settings.github_server_url.rstrip("/")
        return f"{server}/{settings.github_repository}/actions/runs/{settings.github_run_id}"
    return None


class NotDelivered(Exception):
    """A notification request that did not succeed (the message names why)."""


class Transient(NotDelivered):
    """Worth retrying: a 5xx, a 429 or no answer at all."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def retry_after(value: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now; None if absent/bad."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def failure_for(status: int, reason: str, retry_after_header: str | None) -> NotDelivered:
    """The error for an HTTP answer that is not a success: transient or final."""
    answer = f"HTTP {status} {reason}".rstrip()
    if status == 429 or status >= 500:
        return Transient(answer, retry_after(retry_after_header))
    return NotDelivered(f"{answer} (not retried)")


@dataclass(frozen=True)
class Delivery:
    """Bounded attempts of one request: how long each may take and how long to wait between."""

    timeout: float
    attempts: int
    retry_delay: float
    max_retry_delay: float
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_settings(cls, settings: Settings) -> Delivery:
        return cls(settings.notify_timeout, settings.notify_attempts,
                   settings.notify_retry_delay, settings.notify_max_retry_delay)

    def send(self, request: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return request()
            except Transient as error:
                if attempt == self.attempts:
                    raise NotDelivered(f"{error} (gave up after {attempt} attempts)") from None
                backoff = self.retry_delay * 2 ** (attempt - 1)
                wanted = error.retry_after if error.retry_after is not None else backoff
                self.sleep(min(wanted, self.max_retry_delay))
        raise AssertionError("unreachable: attempts >= 1")  # pragma: no cover


class Notifier:
    """An observer that tells someone outside: subclasses implement `begin` and `end`.

    Every call is isolated: an exception becomes a warning, so the run goes on unchanged.
    """

    name = "notifier"

    def __init__(self, run: RunInfo, delivery: Delivery) -> None:
        self.run = run
        self.delivery = delivery
        self._started = time.monotonic()
        self._failed_step: str | None = None

    # The Observer protocol.

    def started(self) -> None:
        self._started = time.monotonic()
        self._isolated(self.begin)

    def step_started(self, step: str, describe: str) -> None:
        pass  # the observers that notify speak at the start and the end only

    def step_finished(self, step: str, seconds: float, error: str | None = None) -> None:
        if error is not None:
            self._failed_step = step

    def finished(self, state: str, error: str | None = None) -> None:
        seconds = time.monotonic() - self._started
        self._isolated(lambda: self.end(state, error, self._failed_step, seconds))

    # What subclasses say.

    def begin(self) -> None:
        """Called when the run starts."""

    def end(self, state: str, error: str | None, failed_step: str | None, seconds: float) -> None:
        """Called when the run ends: its final state, error and failed step, its duration."""

    def _isolated(self, action: Callable[[], None]) -> None:
        try:
            action()
        except NotDelivered as error:
            self.run.warn(f"{self.name} notification failed: {error}")
        except Exception as error:  # an observer's own defect must not fail the run either
            self.run.warn(f"{self.name} notification failed: {type(error).__name__}: {error}")
