"""Vulnerability and misconfiguration scanners that never pass on silence.

``python -m pipeline.scanners audit`` (door: ``nox -s audit``) runs pip-audit over the locked
Python set, npm audit over ``frontend/package-lock.json`` and trivy over a syft SBOM of a
container image, and writes a CycloneDX SBOM of each under ``var/artifacts/sbom/``.
``python -m pipeline.scanners config [PATH ...]`` (run by ``nox -s security``) runs trivy's
offline misconfiguration checks over the Dockerfile and the Helm chart.

The honesty rule: a scanner that could not scan -- its advisory data unreachable, nothing
audited, the tool missing, no image given -- has not passed. It fails the run with one line
``could not scan: REASON``; ``--allow-unscanned`` turns that line into a loud warning. Measured on
these machines: pip-audit exits 0 having audited nothing unless ``--strict`` (PyPI's JSON API
answers 404), npm's advisory endpoint answers 405, trivy cannot download its database.

Findings at or above the threshold (default ``high``) fail the run, each named by its id. A
finding without a severity (pip-audit reports none) counts as above every threshold.
Exit codes: 0 clean, 1 findings or a scanner that could not scan, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess  # nosec B404: fixed scanner commands, argv lists, no shell
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SBOM_DIR = ROOT / "var" / "artifacts" / "sbom"
TRIVY_CACHE = ROOT / "var" / "cache" / "trivy"
FRONTEND = ROOT / "frontend"
#: What ``config`` checks when given no paths: whichever of these exist.
# What ships: the image's Dockerfile and the backend chart, which holds every template the
# release renders (the main chart adds only NOTES; helm/e2e is the kind workflow's throwaway
# PostgreSQL, not something deployed).
MISCONFIG_CANDIDATES = ("backend/Dockerfile", "helm/backend")
# The chart's schema requires an image tag; without one trivy renders nothing and checks nothing.
HELM_SCAN_VALUES = ("--helm-set", "image.tag=misconfig-scan")
LEVELS = ("low", "moderate", "high", "critical")
_ALIASES = {"medium": "moderate", "info": "low", "negligible": "low"}
_REASON_CHARS = 300
#: Python logging's default prefix (``ERROR:pip_audit._cli:``), noise in a one-line reason.
_LOG_PREFIX = re.compile(r"^(CRITICAL|ERROR|WARNING|INFO|DEBUG):[\w.]+:\s*")


class CouldNotScan(Exception):
    """The scanner ran no real check; the message says why."""


@dataclass(frozen=True)
class Finding:
    id: str
    package: str
    severity: str | None  # one of LEVELS, or None when the scanner gives none

    def describe(self) -> str:
        return f"{self.id} ({self.package}, {self.severity or 'severity unknown'})"


@dataclass(frozen=True)
class Report:
    scanner: str
    scanned: int  # packages (or configuration files' checks) the scanner really examined
    findings: tuple[Finding, ...]


def severity(value: object) -> str | None:
    """A scanner's severity word as one of LEVELS; None when it is missing or unknown."""
    word = str(value or "").strip().lower()
    word = _ALIASES.get(word, word)
    return word if word in LEVELS else None


def at_or_above(findings: Sequence[Finding], threshold: str) -> list[Finding]:
    """The findings that fail the run: at or above `threshold`, or of unknown severity."""
    floor = LEVELS.index(threshold)
    return [f for f in findings if f.severity is None or LEVELS.index(f.severity) >= floor]


def _load(scanner: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise CouldNotScan(f"{scanner}: its report is not JSON: {_one_line(text)}") from None


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()[:_REASON_CHARS] or "no output"


def parse_pip_audit(text: str) -> Report:
    """pip-audit's ``--format json``: a skipped dependency means the set was not audited."""
    report = _load("pip-audit", text)
    dependencies = report.get("dependencies", []) if isinstance(report, dict) else []
    if not dependencies:
        raise CouldNotScan("pip-audit: the report lists no dependencies: it audited nothing")
    skipped = [d for d in dependencies if d.get("skip_reason")]
    if skipped:
        raise CouldNotScan(
            f"pip-audit: {len(skipped)} of {len(dependencies)} dependencies not audited, "
            f"e.g. {_one_line(skipped[0]['skip_reason'])}"
        )
    findings = tuple(
        Finding(vuln["id"], f"{dep['name']} {dep.get('version', '')}".strip(), None)
        for dep in dependencies for vuln in dep.get("vulns", [])
    )
    return Report("pip-audit", len(dependencies), findings)


def parse_npm_audit(text: str) -> Report:
    """npm audit's ``--json`` (report version 2): an error body means nothing was audited."""
    report = _load("npm audit", text)
    if not isinstance(report, dict) or "error" in report or "vulnerabilities" not in report:
        message = report.get("message") if isinstance(report, dict) else None
        raise CouldNotScan(f"npm audit: {_one_line(str(message or text))}")
    audited = int(report.get("metadata", {}).get("dependencies", {}).get("total", 0))
    if audited == 0:
        raise CouldNotScan("npm audit: the report counts no dependencies: it audited nothing")
    findings: dict[tuple[str, str], Finding] = {}
    for vulnerability in report["vulnerabilities"].values():
        for via in vulnerability.get("via", []):
            if isinstance(via, dict):  # an advisory; a plain string only points at another entry
                advisory = str(via.get("url", "")).rstrip("/").rsplit("/", 1)[-1]
                ident = advisory or f"npm-advisory-{via.get('source')}"
                package = str(via.get("dependency") or vulnerability.get("name"))
                findings[ident, package] = Finding(ident, package, severity(via.get("severity")))
    return Report("npm audit", audited, tuple(findings.values()))


def parse_trivy(text: str) -> Report:
    """trivy's ``--format json --list-all-pkgs``: no packages listed means nothing was scanned."""
    report = _load("trivy", text)
    results = (report.get("Results") or []) if isinstance(report, dict) else []
    packages = sum(len(result.get("Packages") or []) for result in results)
    if packages == 0:
        raise CouldNotScan("trivy: the report lists no packages: it scanned nothing")
    findings = tuple(
        Finding(vuln["VulnerabilityID"], f"{vuln['PkgName']} {vuln.get('InstalledVersion', '')}"
                .strip(), severity(vuln.get("Severity")))
        for result in results for vuln in result.get("Vulnerabilities") or []
    )
    return Report("trivy", packages, findings)


def parse_trivy_config(text: str, base: str = "") -> Report:
    """``trivy config --format json``: no check run (no file recognised) is not a pass.

    Targets are relative to the scanned folder; `base` (that folder) is put in front of them.
    """
    report = _load("trivy config", text)
    results = (report.get("Results") or []) if isinstance(report, dict) else []
    checks = sum(
        int((result.get("MisconfSummary") or {}).get(key, 0))
        for result in results for key in ("Successes", "Failures")
    )
    if checks == 0:
        raise CouldNotScan("trivy config: no check ran: it recognised no configuration file")
    findings = tuple(
        Finding(misconf["ID"], f"{base}{result['Target']}: {misconf.get('Title', '')}".strip(),
                severity(misconf.get("Severity")))
        for result in results for misconf in result.get("Misconfigurations") or []
        if misconf.get("Status", "FAIL") == "FAIL"
    )
    return Report("trivy config", checks, findings)


def _reason(stderr: str, code: int) -> str:
    """The line of a tool's stderr that says what went wrong (the last error line)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"error|fatal", line, re.IGNORECASE)]
    picked = (errors or lines or [f"exit {code} with no output"])[-1]
    return _one_line(_LOG_PREFIX.sub("", picked))


def run_tool(
    scanner: str, argv: Sequence[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(  # nosec B603: scanner argv built here, no shell
            list(argv), cwd=cwd, env={**os.environ, **(env or {})},
            capture_output=True, text=True, check=False,
        )
    except FileNotFoundError:
        raise CouldNotScan(f"{scanner}: {argv[0]} is not installed (nox -s audit installs it)")


def interpret(
    scanner: str, result: subprocess.CompletedProcess[str], parse: Callable[[str], Report]
) -> Report:
    """A report only from a tool that wrote one; a failed exit must be explained by findings."""
    if not result.stdout.strip():
        raise CouldNotScan(f"{scanner}: {_reason(result.stderr, result.returncode)}")
    report = parse(result.stdout)
    if result.returncode != 0 and not report.findings:
        raise CouldNotScan(f"{scanner} exited {result.returncode} without findings: "
                           f"{_reason(result.stderr, result.returncode)}")
    return report


def write_sbom(source: str, out: Path) -> int:
    """syft's CycloneDX SBOM of `source` at `out`; the number of its components (none fails)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)  # a previous run's SBOM must never stand in for this one
    result = run_tool("syft", ["syft", "scan", source, "-o", f"cyclonedx-json={out}", "-q"],
                      env={"SYFT_CHECK_FOR_APP_UPDATE": "false"})
    if result.returncode != 0 or not out.is_file():
        raise CouldNotScan(f"syft {source}: {_reason(result.stderr, result.returncode)}")
    components = len(json.loads(out.read_text(encoding="utf-8")).get("components") or [])
    if components == 0:
        raise CouldNotScan(f"syft found no packages in {source}")
    return components


def scan_python(sbom_dir: Path) -> Report:
    """pip-audit over every package of uv.lock (all groups), our own workspace left out."""
    with tempfile.TemporaryDirectory(prefix="scan-python-") as work:
        requirements = Path(work) / "requirements.txt"  # a name syft recognises
        export = run_tool("uv export", [
            "uv", "export", "--frozen", "--no-hashes", "--all-packages", "--all-groups",
            "--no-emit-workspace", "--no-header", "--no-annotate", f"--output-file={requirements}",
        ])
        if export.returncode != 0:
            raise CouldNotScan(f"uv export: {_reason(export.stderr, export.returncode)}")
        write_sbom(f"dir:{work}", sbom_dir / "python.cdx.json")
        # --no-deps --disable-pip: the export is complete and pinned; nothing is resolved again.
        result = run_tool("pip-audit", [
            "pip-audit", "--strict", "-r", str(requirements), "--no-deps", "--disable-pip",
            "--progress-spinner=off", "--format", "json",
        ])
    return interpret("pip-audit", result, parse_pip_audit)


def scan_npm(folder: Path, sbom_dir: Path, threshold: str) -> Report:
    """npm audit over the folder's package-lock.json (no node_modules needed)."""
    write_sbom(f"file:{folder / 'package-lock.json'}", sbom_dir / "npm.cdx.json")
    result = run_tool("npm audit", ["npm", "audit", f"--audit-level={threshold}", "--json"],
                      cwd=folder)
    return interpret("npm audit", result, parse_npm_audit)


def scan_image(image: str | None, sbom_dir: Path) -> Report:
    """trivy over syft's SBOM of the image: a reference, an archive path (podman save, skopeo
    copy), or any syft source such as ``oci-dir:PATH``."""
    if not image:
        raise CouldNotScan("image: no image given (IMAGE_REF, or --image REF|ARCHIVE)")
    sbom = sbom_dir / "image.cdx.json"
    write_sbom(image, sbom)
    result = run_tool("trivy", [
        "trivy", "sbom", "--format", "json", "--list-all-pkgs",
        f"--cache-dir={TRIVY_CACHE}", str(sbom),
    ])
    return interpret("trivy", result, parse_trivy)


def scan_misconfig(paths: Sequence[Path]) -> Report:
    """trivy's offline misconfiguration checks (embedded check bundle) over each path."""
    checks = 0
    findings: list[Finding] = []
    for path in paths:
        result = run_tool("trivy config", [
            "trivy", "config", "--format", "json", "--skip-check-update",
            f"--cache-dir={TRIVY_CACHE}", *HELM_SCAN_VALUES, str(path),
        ])
        folder = path if path.is_dir() else path.parent
        report = interpret(f"trivy config {path}", result,
                           partial(parse_trivy_config, base=f"{folder}/"))
        checks += report.scanned
        findings.extend(report.findings)
    return Report("trivy config", checks, tuple(findings))


def misconfig_targets(root: Path, candidates: Sequence[str] = MISCONFIG_CANDIDATES) -> list[Path]:
    """The candidate paths that exist under root."""
    return [root / candidate for candidate in candidates if (root / candidate).exists()]


def judge(scans: Sequence[tuple[str, Callable[[], Report]]], threshold: str,
          allow_unscanned: bool) -> int:
    """Run each scan and print one verdict line per scanner; 1 when any failed the rule."""
    failed = False
    for name, scan in scans:
        try:
            report = scan()
        except CouldNotScan as error:
            if allow_unscanned:
                print(f"WARNING: could not scan: {error} (allowed by --allow-unscanned)",
                      file=sys.stderr)
            else:
                print(f"could not scan: {error}", file=sys.stderr)
                failed = True
            continue
        over = at_or_above(report.findings, threshold)
        print(f"{name}: {report.scanner} examined {report.scanned}, "
              f"{len(report.findings)} findings, {len(over)} at or above {threshold}")
        if over:
            print(f"{name}: failing findings: " + ", ".join(f.describe() for f in over),
                  file=sys.stderr)
            failed = True
    return 1 if failed else 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m pipeline.scanners", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--threshold", choices=LEVELS, default="high",
                        help="lowest severity that fails (default high)")
    audit = commands.add_parser("audit", parents=[common],
                                help="pip-audit, npm audit and the image, with SBOMs")
    audit.add_argument("--allow-unscanned", action="store_true",
                       help="a scanner that could not scan warns instead of failing")
    audit.add_argument("--image", default=os.environ.get("IMAGE_REF") or None,
                       help="image reference, OCI/docker archive path or syft source such as "
                            "oci-dir:PATH (default: IMAGE_REF)")
    audit.add_argument("--sbom-dir", type=Path, default=SBOM_DIR,
                       help=f"where the CycloneDX SBOMs go (default {SBOM_DIR.relative_to(ROOT)})")
    config = commands.add_parser("config", parents=[common],
                                 help="trivy's misconfiguration checks (offline)")
    config.add_argument("paths", nargs="*", type=Path,
                        help="files or folders (default: whichever of "
                             f"{', '.join(MISCONFIG_CANDIDATES)} exist)")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "audit":
        sboms: Path = args.sbom_dir
        return judge([
            ("python", lambda: scan_python(sboms)),
            ("npm", lambda: scan_npm(FRONTEND, sboms, args.threshold)),
            ("image", lambda: scan_image(args.image, sboms)),
        ], args.threshold, args.allow_unscanned)
    missing = [str(path) for path in args.paths if not path.exists()]
    if missing:
        print(f"config: no such path: {', '.join(missing)}", file=sys.stderr)
        return 2
    paths = args.paths or misconfig_targets(ROOT)
    if not paths:
        print(f"trivy config: nothing to check: none of {', '.join(MISCONFIG_CANDIDATES)} exists")
        return 0
    print(f"trivy config: checking {', '.join(str(p) for p in paths)}")
    return judge([("config", lambda: scan_misconfig(paths))], args.threshold, False)


if __name__ == "__main__":
    raise SystemExit(main())
