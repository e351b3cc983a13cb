"""Serve the API on every interface at $PORT: the container image's command.

    python -m textbook_api

Platforms that run the image (Railway, Kubernetes) choose the port through PORT; an exec-form
CMD cannot expand it, so this reads it from the settings. Deploys on this host use
`textbook_api.serve` instead (a private port first, then the shared socket).
"""

from __future__ import annotations

import uvicorn

from textbook_api.config import get_settings

# Inside a container the published port reaches the process through its own interface, never
# through loopback: listening on every interface is the point.
ALL_INTERFACES = "0.0.0.0"  # nosec B104


def main() -> None:
    settings = get_settings()
    uvicorn.run(
        "textbook_api.main:app", host=ALL_INTERFACES, port=settings.port,
        log_level=settings.log_level.lower(), proxy_headers=True,
    )


if __name__ == "__main__":
    main()
