"""The scanners' honesty rule, run for real, and their parsers and threshold on saved reports.

The real runs point every scanner's advisory traffic at a closed port on 127.0.0.1 (the proxy
variables each tool honours), so they meet on every machine the state measured on this one:
their data unreachable. The saved reports in tests/fixtures/scan/ are the scanners' JSON as
they write it (the npm error body was captured here).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import ROOT
from pipeline.local import free_port
from pipeline.scanners import (
    CouldNotScan,
    Finding,
    Report,
    at_or_above,
    interpret,
    judge,
    main,
    misconfig_targets,
    parse_npm_audit,
    parse_pip_audit,
    parse_trivy,
    parse_trivy_config,
    scan_image,
    scan_misconfig,
)

FIXTURES = ROOT / "tests" / "fixtures" / "scan"
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                   "npm_config_https_proxy", "npm_config_proxy")


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send every scanner's requests to a port nobody listens on; no IMAGE_REF."""
    proxy = f"http://127.0.0.1:{free_port()}"
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("IMAGE_REF", raising=False)


def components(sbom: Path) -> list[str]:
    return [c["name"] for c in json.loads(sbom.read_text(encoding="utf-8"))["components"]]


# ------------------------------------------------------------------ the honesty rule, for real


@pytest.mark.integration
@pytest.mark.usefixtures("unreachable")
def test_scanners_that_cannot_reach_their_data_fail_with_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "--sbom-dir", str(tmp_path)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["pip-audit", "npm audit", "image"]
    assert all(line.startswith("could not scan: ") for line in lines)
    assert "no image given" in lines[2]
    # The SBOMs do not need the advisory data: they are written all the same.
    assert "fastapi" in components(tmp_path / "python.cdx.json")
    assert "react" in components(tmp_path / "npm.cdx.json")


@pytest.mark.integration
@pytest.mark.usefixtures("unreachable")
def test_allow_unscanned_turns_the_failure_into_a_loud_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "--sbom-dir", str(tmp_path), "--allow-unscanned"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3
    assert all(line.startswith("WARNING: could not scan: ") for line in lines)
    assert all(line.endswith("(allowed by --allow-unscanned)") for line in lines)


def oci_layout(folder: Path, files: dict[str, str]) -> Path:
    """A one-layer OCI image layout holding `files` (what `podman save --format oci-dir` makes)."""
    blobs = folder / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes, media_type: str) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    layer_blob = blob(layer.getvalue(), "application/vnd.oci.image.layer.v1.tar")
    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": [layer_blob["digest"]]}}
    manifest = blob(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json"),
        "layers": [layer_blob],
    }).encode(), "application/vnd.oci.image.manifest.v1+json")
    (folder / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (folder / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest]}))
    return folder


@pytest.mark.integration
@pytest.mark.usefixtures("unreachable")
def test_an_image_whose_vulnerability_database_is_unreachable_is_not_scanned(
    tmp_path: Path,
) -> None:
    image = oci_layout(tmp_path / "image", {
        "etc/os-release": 'ID=debian\nVERSION_ID="12"\n',
        "var/lib/dpkg/status": "Package: zlib1g\nStatus: install ok installed\n"
                               "Version: 1:1.2.13.dfsg-1\nArchitecture: amd64\n\n",
        "usr/lib/python3/dist-packages/Jinja2-3.1.2.dist-info/METADATA":
            "Metadata-Version: 2.1\nName: Jinja2\nVersion: 3.1.2\n",
    })
    with pytest.raises(CouldNotScan, match=r"^trivy: .*vulnerability DB"):
        scan_image(f"oci-dir:{image}", tmp_path / "sbom")
    assert {"jinja2", "zlib1g"} <= set(components(tmp_path / "sbom" / "image.cdx.json"))


@pytest.mark.integration
def test_an_image_in_which_syft_finds_nothing_is_not_scanned(tmp_path: Path) -> None:
    empty = oci_layout(tmp_path / "image", {"README": "no packages here\n"})
    with pytest.raises(CouldNotScan, match="syft found no packages"):
        scan_image(f"oci-dir:{empty}", tmp_path / "sbom")


def test_no_image_is_not_a_pass(tmp_path: Path) -> None:
    with pytest.raises(CouldNotScan, match="no image given"):
        scan_image(None, tmp_path)


# ------------------------------------------------------------------ parsers and the threshold


def test_pip_audit_findings_fail_naming_their_id(capsys: pytest.CaptureFixture[str]) -> None:
    report = parse_pip_audit(fixture("pip-audit-vulnerable.json"))
    assert report.scanned == 3
    assert report.findings == (Finding("GHSA-h5c8-rqwp-cp95", "jinja2 3.1.2", None),)
    # pip-audit gives no severity: its findings fail at every threshold.
    assert judge([("python", lambda: report)], "critical", False) == 1
    assert "GHSA-h5c8-rqwp-cp95 (jinja2 3.1.2, severity unknown)" in capsys.readouterr().err


def test_a_clean_pip_audit_report_passes(capsys: pytest.CaptureFixture[str]) -> None:
    report = parse_pip_audit(fixture("pip-audit-clean.json"))
    assert judge([("python", lambda: report)], "high", False) == 0
    assert "pip-audit examined 3, 0 findings" in capsys.readouterr().out


def test_a_pip_audit_report_with_skipped_dependencies_is_not_a_pass() -> None:
    with pytest.raises(CouldNotScan, match="3 of 3 dependencies not audited"):
        parse_pip_audit(fixture("pip-audit-skipped.json"))
    with pytest.raises(CouldNotScan, match="audited nothing"):
        parse_pip_audit('{"dependencies": [], "fixes": []}')


def test_npm_findings_at_the_threshold_fail_and_those_below_pass(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = parse_npm_audit(fixture("npm-audit-high.json"))
    assert report.scanned == 1158
    assert sorted(f.id for f in report.findings) == ["GHSA-7fh5-64p2-3v2j", "GHSA-rp65-9cf3-cjxr"]
    assert judge([("npm", lambda: report)], "high", False) == 1
    err = capsys.readouterr().err
    assert "GHSA-rp65-9cf3-cjxr (nth-check, high)" in err
    assert "GHSA-7fh5-64p2-3v2j" not in err  # moderate: below the threshold
    assert judge([("npm", lambda: report)], "critical", False) == 0
    assert [f.id for f in at_or_above(report.findings, "moderate")] != []


def test_npm_audit_error_body_is_not_a_pass() -> None:
    with pytest.raises(CouldNotScan, match="npm audit: 405 Method Not Allowed"):
        parse_npm_audit(fixture("npm-audit-405.json"))


def test_trivy_findings_by_severity(capsys: pytest.CaptureFixture[str]) -> None:
    report = parse_trivy(fixture("trivy-image.json"))
    assert report.scanned == 5
    assert [f.id for f in at_or_above(report.findings, "high")] == ["CVE-2023-4911",
                                                                    "CVE-2023-45853"]
    assert judge([("image", lambda: report)], "critical", False) == 1
    err = capsys.readouterr().err
    assert "CVE-2023-45853 (zlib1g 1:1.2.13.dfsg-1, critical)" in err
    assert "CVE-2023-4911" not in err


def test_a_trivy_report_without_packages_is_not_a_pass() -> None:
    with pytest.raises(CouldNotScan, match="scanned nothing"):
        parse_trivy(fixture("trivy-empty.json"))


@pytest.mark.parametrize("parse", [parse_pip_audit, parse_npm_audit, parse_trivy])
def test_output_that_is_not_json_is_not_a_pass(parse: Callable[[str], Report]) -> None:
    with pytest.raises(CouldNotScan, match="not JSON"):
        parse("Traceback (most recent call last): ...")


def test_a_failed_exit_must_be_explained_by_findings() -> None:
    clean = fixture("pip-audit-clean.json")
    failed = subprocess.CompletedProcess(["pip-audit"], 1, clean, "ERROR: index unreachable\n")
    with pytest.raises(CouldNotScan, match="exited 1 without findings: ERROR: index unreachable"):
        interpret("pip-audit", failed, parse_pip_audit)
    vulnerable = subprocess.CompletedProcess(["pip-audit"], 1, fixture("pip-audit-vulnerable.json"),
                                             "")
    assert interpret("pip-audit", vulnerable, parse_pip_audit).findings
    silent = subprocess.CompletedProcess(["npm"], 1, "", "npm error audit endpoint error\n")
    with pytest.raises(CouldNotScan, match="^npm audit: npm error audit endpoint error$"):
        interpret("npm audit", silent, parse_npm_audit)


def test_a_scanner_that_could_not_scan_fails_the_run_unless_allowed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def unreachable_scan() -> Report:
        raise CouldNotScan("npm audit: 405 Method Not Allowed")

    clean = parse_pip_audit(fixture("pip-audit-clean.json"))
    scans = [("python", lambda: clean), ("npm", unreachable_scan)]
    assert judge(scans, "high", False) == 1
    assert capsys.readouterr().err == "could not scan: npm audit: 405 Method Not Allowed\n"
    assert judge(scans, "high", True) == 0
    assert capsys.readouterr().err.startswith("WARNING: could not scan: npm audit")


# ------------------------------------------------------------------ misconfiguration (offline)


@pytest.mark.integration
def test_trivy_config_names_the_failing_checks(tmp_path: Path) -> None:
    dockerfile = tmp_path / "root" / "Dockerfile"
    dockerfile.parent.mkdir()
    dockerfile.write_text("FROM python:3.12-slim\nRUN pip install uvicorn\nCMD [\"uvicorn\"]\n")
    report = scan_misconfig([dockerfile])
    assert report.scanned > 0
    failing = at_or_above(report.findings, "high")
    assert "DS-0002" in [f.id for f in failing]  # runs as root
    assert all(f.package.startswith(f"{dockerfile.parent}/Dockerfile: ") for f in failing)


@pytest.mark.integration
def test_trivy_config_passes_a_dockerfile_without_high_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3.12-slim\nRUN useradd --create-home app\nUSER app\n"
                          'HEALTHCHECK CMD ["python", "-c", "0"]\nCMD ["python"]\n')
    assert main(["config", str(dockerfile)]) == 0
    out = capsys.readouterr().out
    assert f"trivy config: checking {dockerfile}" in out
    assert re.search(r"trivy config examined [1-9]\d*, \d+ findings, 0 at or above high", out)


def test_config_of_a_path_that_does_not_exist_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", str(tmp_path / "Dockerfile")]) == 2
    assert capsys.readouterr().err == f"config: no such path: {tmp_path / 'Dockerfile'}\n"


@pytest.mark.integration
def test_trivy_config_checks_a_helm_chart(tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("image: demo:1\n")
    (chart / "templates" / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Chart.Name }}\n"
        "spec:\n  selector:\n    matchLabels: {app: demo}\n  template:\n"
        "    metadata:\n      labels: {app: demo}\n    spec:\n      containers:\n"
        "        - name: api\n          image: {{ .Values.image }}\n")
    report = scan_misconfig([chart])
    failing = at_or_above(report.findings, "high")
    assert "KSV-0014" in [f.id for f in failing]  # root file system not read-only
    assert all(f.package.startswith(f"{chart}/templates/deployment.yaml: ") for f in failing)


@pytest.mark.integration
def test_trivy_config_that_recognises_nothing_is_not_a_pass(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a configuration file\n")
    with pytest.raises(CouldNotScan, match="no check ran"):
        scan_misconfig([tmp_path])
    with pytest.raises(CouldNotScan, match="no check ran"):
        parse_trivy_config('{"SchemaVersion": 2, "Results": []}')


def test_misconfig_targets_are_the_candidates_that_exist(tmp_path: Path) -> None:
    (tmp_path / "helm").mkdir()
    assert misconfig_targets(tmp_path, ("backend/Dockerfile", "helm")) == [tmp_path / "helm"]
