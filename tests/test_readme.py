import re

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
