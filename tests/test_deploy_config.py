"""deploy.toml: its one loader's errors name the key, and the committed file agrees with the
settings' defaults it restates."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import ROOT
from pipeline.deploy_config import DEPLOY_CONFIG
from pipeline.errors import UsageError
from pipeline.operations.build_frontend import load_profiles
from pipeline.targets.kubernetes import CHART, load_cluster
from textbook_api.config import Settings


def test_the_local_site_url_is_on_the_port_the_local_stack_serves() -> None:
    profile = load_profiles(ROOT / "deploy.toml")["local"]
    site = urlsplit(profile.site_url)
    assert (site.hostname, site.port) == ("127.0.0.1", Settings.model_fields["local_port"].default)


KUBERNETES_STAGING = (
    '[kubernetes.staging]\ncontext = "c"\nnamespace = "n"\nrelease = "r"\n'
    'timeout_seconds = 600\nvalues = "values-staging.yaml"\nurl = ""\n'
)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (KUBERNETES_STAGING.replace('release = "r"', "release = 1"),
         "deploy.toml: kubernetes.staging.release must be a string"),
        (KUBERNETES_STAGING.replace("600", "true"),
         "deploy.toml: kubernetes.staging.timeout_seconds must be an integer"),
        (KUBERNETES_STAGING.replace('url = ""\n', ""),
         "deploy.toml: kubernetes.staging.url is missing"),
        (KUBERNETES_STAGING + "replicas = 2\n",
         "deploy.toml: kubernetes.staging.replicas is not a known key"),
        ("[kubernetes]\nstaging = 1\n", "deploy.toml: kubernetes.staging must be a table"),
        ("[frontend.local]\n", "deploy.toml: no [kubernetes.<environment>] table"),
        (KUBERNETES_STAGING.replace("staging]", "production]"),
         "deploy.toml has no [kubernetes.staging] table (known: production)"),
        # Every table of the section is checked, not only the environment's own.
        (KUBERNETES_STAGING + "[kubernetes.production]\ncontext = 'c'\n",
         "deploy.toml: kubernetes.production.namespace is missing"),
        ("[kubernetes.staging\n", "deploy.toml: not valid TOML"),
    ],
)
def test_kubernetes_config_errors_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "deploy.toml"
    config.write_text(toml)
    with pytest.raises(UsageError) as caught:
        load_cluster(config, "staging", Settings())
    assert str(caught.value).startswith(f"{tmp_path}/{message}")


def test_a_missing_deploy_config_names_the_tables_it_holds(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"deploy.toml is missing: it holds the \[kubernetes\."):
        load_cluster(tmp_path / "deploy.toml", "staging", Settings())


def test_the_committed_file_loads_every_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the values files are named relative to the repository root
    assert set(load_profiles(DEPLOY_CONFIG)) == {"local", "preview", "staging", "production"}
    for environment in ("staging", "production", "e2e"):
        cluster = load_cluster(DEPLOY_CONFIG, environment, Settings())
        assert cluster.values == CHART / f"values-{environment}.yaml"
