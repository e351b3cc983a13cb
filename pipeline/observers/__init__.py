"""Observers that tell someone outside about a run: one module each, registered here.

The database recorder (pipeline/recording.py) always observes a real run; each of these is on
when its settings are present, and the plan's header names the ones that are.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.observers import github, slack
from pipeline.observers.base import Delivery, Notifier, RunInfo
from textbook_api.config import Settings

# Each module's `observer(settings, run, delivery)`: the observer, or None when it is off.
REGISTRY: tuple[Callable[[Settings, RunInfo, Delivery], Notifier | None], ...] = (
    slack.observer,
    github.observer,
)


def observers_for(settings: Settings, run: RunInfo) -> list[Notifier]:
    delivery = Delivery.from_settings(settings)
    found = (make(settings, run, delivery) for make in REGISTRY)
    return [observer for observer in found if observer is not None]
