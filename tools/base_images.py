"""Base images for backend/Dockerfile made from Debian packages, where none can be pulled.

    uv run --frozen python tools/base_images.py      # prints BUILDER_IMAGE=... BASE_IMAGE=...

`mmdebstrap --variant=minbase` makes a bookworm root file system with its Python 3.11 (what
uv.lock needs), `podman import` turns it into an image. The builder base stands in for the
official full Python image (compilers, headers, venv), the runtime base for the slim one. Each
is keyed by its suite and package list: the tarball is cached under `var/base-images/` and the
image is tagged with the key, so a machine makes each once (a few minutes, mostly downloads).
The tests and bench/bench_image.py use these.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess  # nosec B404: mmdebstrap and podman, fixed arguments
from pathlib import Path

from pipeline.locks import file_lock

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "var" / "base-images"
SUITE = "bookworm"
PACKAGES = {
    "runtime": ("python3", "ca-certificates"),
    "builder": ("python3", "python3-venv", "python3-dev", "build-essential", "ca-certificates"),
}
SETTING = {"runtime": "BASE_IMAGE", "builder": "BUILDER_IMAGE"}
TOOLS = ("mmdebstrap", "podman")
MAKE_TIMEOUT = 1800  # seconds another process may spend making a base before we give up


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def image_ref(kind: str) -> str:
    key = hashlib.sha256(" ".join((SUITE, *PACKAGES[kind])).encode()).hexdigest()[:12]
    return f"localhost/textbook-base-{kind}:{key}"


def _exists(ref: str) -> bool:
    return subprocess.run(  # nosec B603 B607: podman from PATH, fixed arguments
        ["podman", "image", "exists", ref], check=False
    ).returncode == 0


def ensure(kind: str) -> str:
    """The base image of this kind, made (or re-imported from the cached tarball) if missing."""
    ref = image_ref(kind)
    CACHE.mkdir(parents=True, exist_ok=True)
    with file_lock(CACHE / f"{kind}.lock", "base-images", MAKE_TIMEOUT):
        if _exists(ref):
            return ref
        tarball = CACHE / f"{ref.rsplit(':', 1)[1]}-{kind}.tar"
        if not tarball.is_file():
            partial = tarball.with_suffix(".partial")
            subprocess.run(  # nosec B603 B607: mmdebstrap from PATH, fixed arguments
                ["mmdebstrap", "--quiet", "--variant=minbase", "--format=tar",
                 f"--include={','.join(PACKAGES[kind])}", SUITE, str(partial)],
                check=True,
            )
            partial.replace(tarball)
        subprocess.run(  # nosec B603 B607: podman from PATH, fixed arguments
            ["podman", "import", "--quiet", "--change", 'CMD ["python3"]', str(tarball), ref],
            check=True, stdout=subprocess.DEVNULL,
        )
    return ref


def ensure_all() -> dict[str, str]:
    """{BUILDER_IMAGE: ref, BASE_IMAGE: ref}: the settings that point build-image at them."""
    return {SETTING[kind]: ensure(kind) for kind in PACKAGES}


if __name__ == "__main__":
    missing = missing_tools()
    if missing:
        raise SystemExit(f"install {' and '.join(missing)} (Debian: apt-get install -y"
                         " mmdebstrap podman buildah uidmap fuse-overlayfs)")
    for name, value in ensure_all().items():
        print(f"{name}={value}")
