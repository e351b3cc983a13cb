import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("**Pass the tests**", 1)[1]
    match = re.search(r"```sh\n(.+?)\n```", section, re.S)
    assert match, "the README has no test command block"
    return match.group(1).strip()


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    command = readme_test_command()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "nox" in command
    assert command in ci_lines


def heading_anchors(markdown: str) -> set[str]:
    """The anchors a Markdown renderer gives the headings: lower case, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.M)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_the_readme_links_to_files_and_headings_that_exist() -> None:
    links = re.findall(r"\]\(((?:docs|bench)/[^)#]+)(?:#([^)]+))?\)",
                       (ROOT / "README.md").read_text())
    assert ("docs/runbooks.md", "a-failed-migration") in links
    for path, anchor in links:
        target = ROOT / path
        assert target.is_file(), path
        if anchor:
            assert anchor in heading_anchors(target.read_text()), f"{path}#{anchor}"


def test_ci_repeats_the_output_of_each_failed_session_at_the_end(tmp_path: Path) -> None:
    # A parallel nox run prints a session's output when it ends; the log's tail must still
    # name an early failure's cause.
    log = tmp_path / "ci.log"
    log.write_text("\n".join([
        "Starting session early...",
        "========== \N{BALLOT X} early: failed, 7 seconds ==========",
        "nox > Running session early",
        "Error: port 18765 on 127.0.0.1 is taken by pid 42",
        "Starting session late...",
        "========== \N{CHECK MARK} late: success, 9 minutes ==========",
        *(f"late output {n}" for n in range(500)),
        "nox > * early: failed, took 7 seconds",
    ]) + "\n")
    result = subprocess.run([sys.executable, str(ROOT / ".ci" / "failed_sessions.py"), str(log)],
                            capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == [
        "========== \N{BALLOT X} early: failed, 7 seconds ==========",
        "nox > Running session early",
        "Error: port 18765 on 127.0.0.1 is taken by pid 42",
    ]
