"""Releases on this host: one folder each, a `current` symlink switched atomically, retention."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# A release's life: prepared → live (switched in) → retired (replaced); or prepared → failed.
SERVED_STATES = ("live", "retired")


@dataclass(frozen=True)
class Layout:
    """Where the local target keeps one environment's releases and processes."""

    root: Path

    @classmethod
    def of(cls, data_dir: Path, environment: str) -> Layout:
        return cls(data_dir.resolve() / "deploy" / environment)

    def releases(self, service: str) -> Path:
        return self.root / service / "releases"

    def current_link(self, service: str) -> Path:
        return self.root / service / "current"

    @property
    def control(self) -> Path:
        return self.root / "keeper.sock"

    @property
    def server_file(self) -> Path:
        return self.root / "backend" / "server.json"

    @property
    def site_dir(self) -> Path:
        return self.current_link("frontend") / "site"

    def lock(self, service: str) -> Path:
        return self.root / "locks" / f"{service}.lock"


@dataclass(frozen=True)
class Release:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def meta(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.path / "release.json").read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return {}

    @property
    def state(self) -> str:
        return str(self.meta.get("state", "prepared"))

    def go_live(self, job_id: int | None) -> None:
        self.update(state="live", live_since=datetime.now(UTC).isoformat(), job_id=job_id)

    def update(self, **fields: Any) -> None:
        meta = {**self.meta, **fields}
        partial = self.path / "release.json.tmp"
        partial.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        partial.replace(self.path / "release.json")


def new_release(layout: Layout, service: str, tag: str, **meta: Any) -> Release:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    release = Release(layout.releases(service) / f"{stamp}-{tag}")
    release.path.mkdir(parents=True)
    release.update(state="prepared", created=datetime.now(UTC).isoformat(), **meta)
    return release


def releases(layout: Layout, service: str) -> list[Release]:
    folder = layout.releases(service)
    if not folder.is_dir():
        return []
    return sorted((Release(p) for p in folder.iterdir() if p.is_dir()), key=lambda r: r.id)


def current(layout: Layout, service: str) -> Release | None:
    link = layout.current_link(service)
    return Release(link.resolve()) if link.is_symlink() and link.resolve().is_dir() else None


def previous_served(layout: Layout, service: str) -> Release | None:
    """The rollback target: of the releases served before, the one switched in most recently."""
    now = current(layout, service)
    served = [
        r for r in releases(layout, service)
        if r.state in SERVED_STATES and (now is None or r.id != now.id)
    ]
    served.sort(key=lambda r: str(r.meta.get("live_since", "")))
    return served[-1] if served else None


def find(layout: Layout, service: str, release_id: str) -> Release | None:
    return next((r for r in releases(layout, service) if r.id == release_id), None)


def switch(layout: Layout, service: str, release: Release) -> None:
    """Point `current` at the release in one rename, so readers see the old or the new."""
    link = layout.current_link(service)
    staging = link.with_name("current.next")
    staging.unlink(missing_ok=True)
    os.symlink(os.path.relpath(release.path, link.parent), staging)
    staging.replace(link)


def prune(layout: Layout, service: str, keep: int) -> list[str]:
    """Remove all but the newest `keep` releases; never the current one or the rollback target."""
    protected = {r.id for r in (current(layout, service), previous_served(layout, service)) if r}
    everything = releases(layout, service)
    doomed = [r for r in everything[: max(len(everything) - keep, 0)] if r.id not in protected]
    for release in doomed:
        shutil.rmtree(release.path)
    return [r.id for r in doomed]
