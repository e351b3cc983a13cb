"""Exit codes of every operation, and the errors that map onto them."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the operation failed (after its rollback, where it has one)
    USAGE = 2  # bad usage or configuration: nothing started
    LOCKED = 3  # another run holds the lock: nothing started


class PipelineError(Exception):
    exit_code = ExitCode.FAILED


class OperationFailed(PipelineError):
    exit_code = ExitCode.FAILED


class UsageError(PipelineError):
    exit_code = ExitCode.USAGE


class LockHeld(PipelineError):
    exit_code = ExitCode.LOCKED


class Cancelled(BaseException):
    """SIGTERM (or SIGINT) arrived: the run stops, rolls back and is recorded as cancelled."""
