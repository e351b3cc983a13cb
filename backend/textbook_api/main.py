"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from textbook_api.api.deployments import router as deployments_router
from textbook_api.api.errors import install_error_handlers
from textbook_api.api.health import router as health_router
from textbook_api.api.query import router as query_router
from textbook_api.config import get_settings
from textbook_api.site import SiteFiles


def create_app() -> FastAPI:
    app = FastAPI(
        title="Physical AI & Humanoid Robotics textbook API",
        version="0.1.0",
        description="Answers questions over the textbook and keeps the delivery audit trail.",
    )
    app.include_router(health_router)
    app.include_router(query_router)
    app.include_router(deployments_router)
    install_error_handlers(app)
    site = get_settings().site_dir
    if site is not None:
        # The textbook at `/`, so the local stack is one URL. StaticFiles resolves the path on
        # every request, so a release switch (a symlink swap) takes effect at once.
        app.mount("/", SiteFiles(directory=site, html=True, check_dir=False), name="site")
    return app


app = create_app()
