"""Drift rules: the doors, the workflows and the hooks cannot wander from the one implementation.

Each rule is a small function checked twice: against the repository (must hold) and against a
broken input made here (must be caught), so a rule that silently stopped checking would fail.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ROOT, door_command, door_env
from pipeline.operations import OPERATIONS

RUNNER_LINE = re.compile(
    r"^((uvx |uv run |python3? -m |pipx run )?(nox|invoke|inv)\b"
    r"|(python3? -m )?(pip|uv pip|uv tool|pipx) install\b)"
)

# Argument sets whose dry-run output and exit code both doors must share.
PARITY_CASES: dict[str, list[tuple[str, ...]]] = {
    "run-migrations": [
        ("--dry-run",),
        ("--dry-run", "--downgrade", "base"),
        ("--dry-run", "--sql"),
        ("--dry-run", "--check", "--lock-timeout", "5"),
        ("--dry-run", "--revision", "no-such-revision"),
    ],
    "populate-embeddings": [
        ("--dry-run",),
        ("--dry-run", "--allow-mass-delete", "--max-delete-fraction", "0.2",
         "--recall-k", "3", "--min-recall", "0.5", "--lock-timeout", "5"),
        ("--dry-run", "--docs-dir", "frontend/no-such-docs"),
        ("--dry-run", "--max-delete-fraction", "2"),
    ],
    "build-frontend": [
        ("--dry-run",),
        ("--dry-run", "--environment", "production"),
        ("--dry-run", "--environment", "no-such-environment"),
    ],
    "status": [
        (),
        ("--job", "7", "--limit", "5"),
        ("--limit", "0"),
    ],
    "deploy-backend": [
        ("--dry-run", "--port", "18765"),
        ("--dry-run", "--port", "18765", "--keep", "3", "--health-attempts", "5"),
        ("--dry-run", "--target", "mars"),
    ],
    "deploy-frontend": [
        ("--dry-run", "--prebuilt"),
        ("--dry-run", "--target", "vercel"),
        ("--dry-run", "--target", "vercel", "--environment", "production"),
    ],
    "rollback": [
        ("--dry-run", "--port", "18765"),
        ("--dry-run", "--service", "nothing"),
    ],
    "up": [
        ("--dry-run", "--port", "18765"),
    ],
    "down": [
        ("--dry-run",),
    ],
    "monitor": [
        ("--dry-run", "--once"),
        ("--dry-run", "--interval", "10", "--timeout", "2"),
        ("--dry-run", "--timeout", "0"),
    ],
}


def missing_twins(operations: list[str], scripts: Path) -> list[str]:
    return [name for name in operations if not list(scripts.glob(f"{name}.*"))]


def non_runner_steps(workflow: dict[str, Any]) -> list[str]:
    offending = []
    for job in workflow.get("jobs", {}).values():
        for step in job.get("steps", []):
            for line in str(step.get("run", "")).splitlines():
                if line.strip() and not RUNNER_LINE.match(line.strip()):
                    offending.append(line.strip())
    return offending


def locked_versions(lock_text: str) -> dict[str, str]:
    return {p["name"]: p["version"] for p in tomllib.loads(lock_text)["package"] if "version" in p}


def pin_mismatches(config: dict[str, Any], locked: dict[str, str]) -> list[str]:
    problems = []
    for repo in config["repos"]:
        for hook in repo["hooks"]:
            for requirement in hook.get("additional_dependencies", []):
                name, _, version = requirement.partition("==")
                if locked.get(name.lower()) != version:
                    found = locked.get(name.lower())
                    problems.append(f"{hook['id']}: {requirement} (lock: {found})")
            if hook["language"] == "system" and not hook["entry"].startswith("uv run --frozen"):
                problems.append(f"{hook['id']}: a system hook must run from the lock")
    return problems


def door_output(
    door: str, operation: str, args: tuple[str, ...], env: dict[str, str]
) -> tuple[int, str, str]:
    result = subprocess.run(
        door_command(door, operation, *args),
        env=door_env(env),
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    return result.returncode, result.stdout, result.stderr


@pytest.fixture
def door_settings(tmp_path: Path) -> dict[str, str]:
    return {"DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/textbook.db"}


def test_every_operation_has_its_shell_twin() -> None:
    assert OPERATIONS
    assert missing_twins(sorted(OPERATIONS), ROOT / "scripts") == []


def test_a_missing_twin_is_caught(tmp_path: Path) -> None:
    (tmp_path / "run-migrations.sh").touch()
    assert missing_twins(["run-migrations", "deploy-everything"], tmp_path) == ["deploy-everything"]


def test_every_operation_has_parity_cases() -> None:
    assert set(PARITY_CASES) == set(OPERATIONS)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("operation", "args"), [(op, args) for op, cases in PARITY_CASES.items() for args in cases]
)
def test_both_doors_print_the_same_plan_and_exit_code(
    operation: str, args: tuple[str, ...], door_settings: dict[str, str]
) -> None:
    script = door_output("script", operation, args, door_settings)
    invoke = door_output("invoke", operation, args, door_settings)
    assert script == invoke
    assert "plan" in script[1] or script[0] != 0


@pytest.mark.integration
def test_a_difference_between_the_doors_is_caught(door_settings: dict[str, str]) -> None:
    script = door_output(
        "script", "run-migrations", ("--dry-run", "--lock-timeout", "7"), door_settings
    )
    invoke = door_output("invoke", "run-migrations", ("--dry-run",), door_settings)
    assert script != invoke


def test_every_workflow_step_is_a_nox_or_invoke_call() -> None:
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows
    for path in workflows:
        assert non_runner_steps(yaml.safe_load(path.read_text())) == [], path.name


def test_a_workflow_step_that_bypasses_the_runner_is_caught() -> None:
    workflow = yaml.safe_load(
        "jobs:\n  t:\n    steps:\n      - run: pip install -r requirements/bootstrap.txt\n"
        "      - run: nox -s lint\n      - run: |\n          nox -s tests\n          pytest -x\n"
    )
    assert non_runner_steps(workflow) == ["pytest -x"]


def test_hooks_pin_the_locked_tool_versions() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    locked = locked_versions((ROOT / "uv.lock").read_text())
    assert pin_mismatches(config, locked) == []
    pinned = [
        dep for repo in config["repos"] for hook in repo["hooks"]
        for dep in hook.get("additional_dependencies", [])
    ]
    assert {"flake8", "bandit", "pre-commit-hooks"} <= {dep.partition("==")[0] for dep in pinned}


def test_a_hook_pin_that_drifted_from_the_lock_is_caught() -> None:
    config = {
        "repos": [
            {
                "repo": "local",
                "hooks": [
                    {"id": "flake8", "language": "python", "entry": "flake8",
                     "additional_dependencies": ["flake8==0.0.1"]},
                    {"id": "mypy", "language": "system", "entry": "mypy"},
                ],
            }
        ]
    }
    problems = pin_mismatches(config, {"flake8": "7.5.0"})
    assert problems == [
        "flake8: flake8==0.0.1 (lock: 7.5.0)",
        "mypy: a system hook must run from the lock",
    ]
