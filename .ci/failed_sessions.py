"""Print each failed nox session's last lines from a log of a parallel run (for .ci/run)."""

import sys

BANNER = "========== "
LAST_LINES = 40


def failed_blocks(lines: list[str]) -> list[tuple[str, list[str]]]:
    """(banner, output) of each session whose banner says it failed."""
    blocks: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for line in lines:
        if line.startswith(BANNER):
            current = [] if "\N{BALLOT X}" in line else None
            if current is not None:
                blocks.append((line, current))
        elif current is not None and not line.startswith("Starting session "):
            current.append(line)
    return blocks


def main(path: str) -> None:
    with open(path, encoding="utf-8", errors="replace") as log:
        blocks = failed_blocks(log.read().splitlines())
    for banner, output in blocks:
        print(banner)
        print("\n".join(output[-LAST_LINES:]))


if __name__ == "__main__":
    main(sys.argv[1])
