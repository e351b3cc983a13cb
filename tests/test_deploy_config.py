"""The committed deploy configuration agrees with the settings' defaults it restates."""

from __future__ import annotations

from urllib.parse import urlsplit

from conftest import ROOT
from pipeline.operations.build_frontend import load_profiles
from textbook_api.config import Settings


def test_the_local_site_url_is_on_the_port_the_local_stack_serves() -> None:
    profile = load_profiles(ROOT / "deploy.toml")["local"]
    site = urlsplit(profile.site_url)
    assert (site.hostname, site.port) == ("127.0.0.1", Settings.model_fields["local_port"].default)
