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
