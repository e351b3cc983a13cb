"""Drift rules: the doors, the workflows and the hooks cannot wander from the one implementation.

Each rule is a small function checked twice: against the repository (must hold) and against a
broken input made here (must be caught), so a rule that silently stopped checking would fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke.parser import Parser

import tasks
from conftest import ROOT, door_output, unavailable
from pipeline import cli
from pipeline.operations import OPERATIONS

# A workflow's run lines: the install (the runner from bootstrap.txt; where a job calls invoke,
# the locked pipeline too, its .venv/bin put on PATH), then bare nox sessions and invoke tasks.
# Nothing else: no `uv run ... invoke`, no tool installed or run beside the runner.
RUNNER_LINE = re.compile(
    r"pip install -r requirements/bootstrap\.txt"
    r"|uv sync --frozen"
    r'|echo "\$PWD/\.venv/bin" >> "\$GITHUB_PATH"'
    # Arguments, but no second command chained, piped or redirected behind the call.
    r"|nox -s [^\s;&|<>`][^;&|<>`]*"
    r"|invoke [a-z][\w-]*( [^;&|<>`]*)?"
)

# Argument sets whose dry-run output and exit code both doors must share. Every set goes through
# invoke's own parser in-process (`test_invoke_hands_the_cli_the_options_it_was_given`: the one
# place the doors' arguments can part); each operation's first set, and one refused, through
# both doors as processes (a door run is ~1.4 CPU-s of imports: 80 of them were 112 CPU-s).
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
    "build-image": [
        ("--dry-run",),
        ("--dry-run", "--environment", "staging", "--tag", "v1.2.3"),
        ("--dry-run", "--push"),  # no IMAGE_REGISTRY: exit 2 through both doors
        ("--dry-run", "--tag", "not a tag"),
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
        ("--dry-run", "--target", "kubernetes", "--environment", "staging"),
        ("--dry-run", "--target", "kubernetes", "--environment", "production", "--image-tag",
         "v1.2.3", "--image-digest", "sha256:" + "0f" * 32, "--prebuilt-image"),
        ("--dry-run", "--target", "kubernetes", "--environment", "nowhere"),
        ("--dry-run", "--target", "kubernetes", "--environment", "staging", "--image-digest",
         "md5:1"),
    ],
    "deploy-frontend": [
        ("--dry-run", "--prebuilt"),
        ("--dry-run", "--target", "vercel"),
        ("--dry-run", "--target", "vercel", "--environment", "production"),
    ],
    "rollback": [
        ("--dry-run", "--port", "18765"),
        ("--dry-run", "--service", "nothing"),
        ("--dry-run", "--target", "kubernetes", "--environment", "staging"),
        ("--dry-run", "--target", "kubernetes", "--environment", "production", "--to", "3"),
        ("--dry-run", "--target", "kubernetes", "--environment", "staging", "--service",
         "frontend"),
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
ALL_CASES = [(operation, args) for operation, cases in PARITY_CASES.items() for args in cases]
PROCESS_CASES = [(operation, cases[0]) for operation, cases in PARITY_CASES.items()] + [
    ("deploy-backend", ("--dry-run", "--target", "mars")),  # exit 2 through both doors
]


def missing_twins(operations: list[str], scripts: Path) -> list[str]:
    return [name for name in operations if not list(scripts.glob(f"{name}.*"))]


def non_runner_steps(workflow: dict[str, Any]) -> list[str]:
    offending = []
    for job in workflow.get("jobs", {}).values():
        for step in job.get("steps", []):
            for line in str(step.get("run", "")).splitlines():
                if line.strip() and not RUNNER_LINE.fullmatch(line.strip()):
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


@pytest.mark.parametrize(("operation", "args"), ALL_CASES)
def test_invoke_hands_the_cli_the_options_it_was_given(
    operation: str, args: tuple[str, ...]
) -> None:
    """The invoke task turns its keyword arguments back into argv for the CLI both doors share:
    parsed by invoke's own parser, they must mean what the same arguments mean to the CLI."""
    [parsed] = Parser(contexts=tasks.namespace.to_contexts()).parse_argv([operation, *args])
    argv = cli.to_argv(OPERATIONS[operation], parsed.as_kwargs)
    parser = cli.build_parser(OPERATIONS[operation])
    assert vars(parser.parse_args(argv)) == vars(parser.parse_args(args))


@pytest.mark.integration
@pytest.mark.database_independent
@pytest.mark.parametrize(("operation", "args"), PROCESS_CASES)
def test_both_doors_print_the_same_plan_and_exit_code(
    operation: str, args: tuple[str, ...], door_settings: dict[str, str]
) -> None:
    script = door_output("script", operation, args, door_settings)
    invoke = door_output("invoke", operation, args, door_settings)
    assert script == invoke
    assert "plan" in script[1] or script[0] != 0


@pytest.mark.integration
@pytest.mark.database_independent
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
        "      - run: uv run --frozen invoke run-migrations\n"
        "      - run: uvx nox -s lint\n"
        "      - run: pip install -r requirements/bootstrap.txt && pip install pytest\n"
        "      - run: uv sync --frozen --all-groups\n"
        "      - run: invoke deploy-backend; curl example.invalid\n"
        "      - run: nox -s lint && pytest -x\n"
    )
    assert non_runner_steps(workflow) == [
        "pytest -x",
        "uv run --frozen invoke run-migrations",
        "uvx nox -s lint",
        "pip install -r requirements/bootstrap.txt && pip install pytest",
        "uv sync --frozen --all-groups",
        "invoke deploy-backend; curl example.invalid",
        "nox -s lint && pytest -x",
    ]


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


# The workflows against the noxfile and against each other.

WORKFLOWS = ROOT / ".github" / "workflows"
USES = re.compile(r"^(?P<action>[\w.-]+/[\w./-]+)@(?P<ref>\S+)$")


def workflow(name: str) -> dict[str, Any]:
    document = dict(yaml.safe_load((WORKFLOWS / name).read_text()))
    document["on"] = document.pop(True)  # YAML 1.1 reads the key `on` as true
    return document


def nox_test_matrix() -> list[tuple[str, str]]:
    """(python, database) of each `tests` session, as nox itself lists them (`nox -l --json`:
    the noxfile computes its matrix, so reading its literals would copy the rule)."""
    nox = shutil.which("nox")
    if nox is None:
        unavailable("needs nox on PATH: python3 -m pip install -r requirements/bootstrap.txt")
    listed = subprocess.run([nox, "-l", "--json"], capture_output=True, text=True, check=True,
                            cwd=ROOT)
    return [(session["python"], session["call_spec"]["database"])
            for session in json.loads(listed.stdout) if session["name"] == "tests"]


def matrix_mismatches(
    test_workflow: dict[str, Any], nox_matrix: list[tuple[str, str]]
) -> list[str]:
    """The workflow's matrix cells that nox lacks, and nox's that the workflow lacks."""
    cells = [(str(cell["python"]), str(cell["database"]))
             for cell in test_workflow["jobs"]["tests"]["strategy"]["matrix"]["include"]]
    return ([f"workflow cell {cell} is not a nox tests session" for cell in cells
             if cell not in nox_matrix]
            + [f"nox tests session {cell} is not in the workflow" for cell in nox_matrix
               if cell not in cells])


def action_pins(workflows: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Each action used → the refs it is used at, across all the workflows."""
    pins: dict[str, set[str]] = {}
    for document in workflows:
        for job in document["jobs"].values():
            for step in job.get("steps", []):
                if "uses" in step:
                    match = USES.match(step["uses"])
                    assert match, step["uses"]
                    pins.setdefault(match.group("action"), set()).add(match.group("ref"))
    return pins


def unpinned(pins: dict[str, set[str]]) -> list[str]:
    """Actions not pinned by one full commit SHA everywhere."""
    return sorted(action for action, refs in pins.items()
                  if len(refs) != 1 or not re.fullmatch(r"[0-9a-f]{40}", next(iter(refs))))


def job_calling(document: dict[str, Any], operation: str, environment: str) -> str:
    """The one job that runs `invoke OPERATION` in ENVIRONMENT."""
    found = [
        name for name, job in document["jobs"].items()
        if job.get("env", {}).get("ENVIRONMENT") == environment
        and any(f"invoke {operation}" in str(step.get("run", "")) for step in job["steps"])
    ]
    assert len(found) == 1, (operation, environment, found)
    return found[0]


def ancestors(document: dict[str, Any], job: str) -> set[str]:
    """Every job that `job` waits for, directly or through others."""
    needs = document["jobs"][job].get("needs", [])
    direct = {needs} if isinstance(needs, str) else set(needs)
    return direct.union(*(ancestors(document, name) for name in direct))


def deploy_order_problems(document: dict[str, Any], environment: str) -> list[str]:
    migrate, index, backend, frontend = (
        job_calling(document, operation, environment)
        for operation in ("run-migrations", "populate-embeddings", "deploy-backend",
                          "deploy-frontend")
    )
    wanted = [(index, migrate), (backend, migrate), (backend, index), (frontend, backend)]
    return [f"{job} does not wait for {before}" for job, before in wanted
            if before not in ancestors(document, job)]


def test_the_test_matrix_is_the_noxfile_matrix() -> None:
    matrix = nox_test_matrix()
    assert ("3.13", "postgres") in matrix and ("3.11", "sqlite") in matrix
    assert matrix_mismatches(workflow("test-backend.yml"), matrix) == []


def test_a_matrix_that_drifted_from_the_noxfile_is_caught() -> None:
    document = {"jobs": {"tests": {"strategy": {"matrix": {"include": [
        {"python": "3.11", "database": "sqlite"}, {"python": 3.12, "database": "postgres"}]}}}}}
    assert matrix_mismatches(document, [("3.11", "sqlite"), ("3.13", "sqlite")]) == [
        "workflow cell ('3.12', 'postgres') is not a nox tests session",
        "nox tests session ('3.13', 'sqlite') is not in the workflow",
    ]


def test_every_action_is_pinned_by_one_sha_in_every_workflow() -> None:
    documents = [dict(yaml.safe_load(path.read_text())) for path in WORKFLOWS.glob("*.yml")]
    pins = action_pins(documents)
    assert {"actions/checkout", "actions/setup-python"} <= set(pins)
    assert unpinned(pins) == []


def test_a_tag_or_a_second_pin_is_caught() -> None:
    documents = [
        {"jobs": {"a": {"steps": [{"uses": "actions/checkout@" + "1" * 40},
                                  {"uses": "actions/setup-node@v4"}]}}},
        {"jobs": {"b": {"steps": [{"uses": "actions/checkout@" + "2" * 40}]}}},
    ]
    assert unpinned(action_pins(documents)) == ["actions/checkout", "actions/setup-node"]


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_the_deploy_workflow_orders_migrate_index_backend_frontend(environment: str) -> None:
    assert deploy_order_problems(workflow("deploy.yml"), environment) == []


def test_a_backend_deployed_before_the_index_is_caught() -> None:
    document = workflow("deploy.yml")
    backend = job_calling(document, "deploy-backend", "staging")
    document["jobs"][backend]["needs"] = ["staging-migrations"]
    assert deploy_order_problems(document, "staging") == [
        f"{backend} does not wait for staging-embeddings"
    ]


def test_production_waits_for_staging_and_for_its_reviewers() -> None:
    document = workflow("deploy.yml")
    assert document["on"] == {"push": {"branches": ["main"]}}
    staging = {name for name, job in document["jobs"].items() if job["environment"] == "staging"}
    production = {name for name, job in document["jobs"].items()
                  if job["environment"] == "production"}
    assert len(staging) == len(production) == 4
    for name in production:
        job = document["jobs"][name]
        assert staging <= ancestors(document, name) | {name}, name
        deploys = [str(step["run"]) for step in job["steps"] if "invoke deploy-" in
                   str(step.get("run", ""))]
        assert all(run.endswith("--yes") for run in deploys), name


def test_deploy_jobs_never_cancel_and_hold_only_the_permissions_they_use() -> None:
    for name in ("deploy.yml", "rollback.yml"):
        document = workflow(name)
        assert document["permissions"] == {}, name
        for job_name, job in document["jobs"].items():
            assert job["concurrency"]["cancel-in-progress"] is False, job_name
            assert job["concurrency"]["group"].startswith("deploy-"), job_name
            runs = " ".join(str(step.get("run", "")) for step in job["steps"])
            posts_statuses = "invoke deploy-" in runs or "invoke rollback" in runs
            wanted = {"contents": "read", **({"deployments": "write"} if posts_statuses else {})}
            assert job["permissions"] == wanted, job_name
            assert ("GITHUB_TOKEN" in job["env"]) == posts_statuses, job_name
            assert "secrets." not in runs and "${{" not in runs, job_name


def test_rollback_is_dispatched_by_hand_with_its_four_inputs() -> None:
    document = workflow("rollback.yml")
    assert set(document["on"]) == {"workflow_dispatch"}
    assert set(document["on"]["workflow_dispatch"]["inputs"]) == {
        "service", "target", "environment", "to"
    }
    (job,) = document["jobs"].values()
    assert job["environment"] == "${{ inputs.environment }}"
    (command,) = [step["run"] for step in job["steps"] if "invoke rollback" in step.get("run", "")]
    assert '--to "$ROLLBACK_TO"' in command and '--service "$ROLLBACK_SERVICE"' in command


def target_drift(registered: set[str], accepted: set[str]) -> set[str]:
    """Targets the engine registers that the API refuses, or the API accepts that none deploys.

    The API ships in the image without the pipeline, so it keeps the names it validates
    configurations against (services.deployments.TARGETS); this rule keeps them the registry's.
    """
    return registered ^ accepted


def test_the_api_accepts_exactly_the_registered_targets() -> None:
    from pipeline.targets import REGISTRY
    from textbook_api.services.deployments import TARGETS

    assert target_drift(set(REGISTRY), set(TARGETS)) == set()


def test_a_target_the_api_does_not_know_is_caught() -> None:
    assert target_drift({"local", "mars"}, {"local"}) == {"mars"}
