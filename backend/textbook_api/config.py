"""Settings in one place: every process (API, migrations, pipeline) reads them from here."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
DATABASE_FILE_NAME = "textbook.db"

# Environment variables whose values are secrets: redacted wherever text leaves the process.
SECRET_ENV_VARS = (
    "DEPLOY_API_TOKEN",
    "COHERE_API_KEY",
    # A path, but it leads to cluster credentials: helm and kubectl read it from here only.
    "KUBECONFIG",
    "QDRANT_API_KEY",
    "VERCEL_TOKEN",
    "RAILWAY_TOKEN",
    "SLACK_WEBHOOK_URL",
    "REGISTRY_USERNAME",
    "REGISTRY_PASSWORD",
    "GITHUB_TOKEN",
)


class Settings(BaseSettings):
    """Process settings, read from the environment (and `.env` when present)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: str = "local"
    data_dir: Path = Path("var")
    database_url: SecretStr | None = None
    migrations_dir: Path = PACKAGE_DIR / "migrations"
    deploy_api_token: SecretStr | None = None
    log_level: str = "INFO"
    # A built textbook site to serve at `/` (the local deploy target points it at the current
    # frontend release); unset: the API alone.
    site_dir: Path | None = None
    # The backend package that deploy-backend builds into a wheel.
    backend_dir: Path = Path("backend")
    # The stable loopback port of the local stack (the site and the API on one URL).
    local_port: int = Field(8765, ge=1, le=65535)
    # The Docusaurus site that build-frontend builds (its docs/, package-lock.json, build/).
    frontend_dir: Path = Path("frontend")
    # Where build-frontend writes the site and deploy-frontend --prebuilt reads it; None:
    # <frontend_dir>/build. Runs that share a checkout at once (the e2e sessions) keep apart.
    frontend_build_dir: Path | None = None
    # Installed node_modules kept per lockfile for the next checkout (build-frontend, the Vercel
    # CLI); None: <xdg_cache_home>/textbook/node_modules.
    node_modules_cache_dir: Path | None = None
    # The user's cache folder (the XDG base directory convention).
    xdg_cache_home: Path = Field(default_factory=lambda: Path.home() / ".cache")
    # The port `python -m textbook_api` (the container image's command) listens on.
    port: int = Field(8000, ge=1, le=65535)
    # build-image: the registry (host[:port][/namespace]) and repository name its tags go to,
    # and the bases of backend/Dockerfile's two stages (None: the Dockerfile's defaults, the
    # official Python images; here, where none can be pulled, locally made ones).
    image_registry: str | None = None
    image_name: str = Field("textbook-api", pattern=r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$")
    base_image: str | None = None
    builder_image: str | None = None
    # A CA bundle the image's builder trusts for its downloads (OpenSSL's own variable, so a
    # host behind a TLS-re-signing proxy passes what it trusts already); None: the image's own.
    ssl_cert_file: Path | None = None
    registry_username: SecretStr | None = None
    registry_password: SecretStr | None = None

    # Retrieval (RAG): the docs to index, the embedder, the vector store, the quality gate.
    docs_dir: Path = Path("frontend/docs")
    embedder: Literal["local", "cohere"] = "local"
    cohere_api_key: SecretStr | None = None
    cohere_embed_model: str = "embed-english-v3.0"
    cohere_embed_dimension: int = Field(1024, ge=1)
    cohere_chat_model: str = "command-r-08-2024"
    cohere_base_url: str | None = None  # None: Cohere's own API
    cohere_max_retries: int = Field(5, ge=0)
    cohere_timeout: float = Field(30.0, gt=0)
    qdrant_url: str | None = None  # a Qdrant server; None: local mode in qdrant_path
    qdrant_api_key: SecretStr | None = None
    qdrant_path: Path | None = None  # None: <data_dir>/qdrant
    qdrant_collection: str = Field("textbook", min_length=1)
    # Seconds a local-mode store stays open after the API's last query (see services/retrieval).
    qdrant_local_linger: float = Field(2.0, ge=0)
    # A sync refuses to delete more than this share of the indexed chunks (unless told to).
    index_max_delete_fraction: float = Field(0.5, ge=0, le=1)
    # After indexing, a query made of each heading must find its own section within the top
    # recall_k passages for at least recall_threshold of the headings, or the run fails.
    recall_threshold: float = Field(0.8, ge=0, le=1)
    recall_k: int = Field(5, ge=1)

    # The railway deploy target (pipeline/targets/railway.py): which service it deploys, where
    # the service answers, and how long a deployment may take to serve.
    railway_token: SecretStr | None = None  # a project token (header Project-Access-Token)
    railway_project_id: str | None = None
    railway_environment_id: str | None = None
    railway_service_id: str | None = None
    railway_public_url: str | None = None  # the API's public URL, gated on /ready
    railway_api_url: str = "https://backboard.railway.com/graphql/v2"
    railway_request_timeout: float = Field(30.0, gt=0)
    railway_deploy_timeout: float = Field(900.0, gt=0)
    railway_poll_interval: float = Field(5.0, gt=0)
    # The kubernetes target: overrides of deploy.toml's [kubernetes.<env>] context and namespace
    # (None: the file's). KUBECONFIG, the credentials, is read by helm and kubectl themselves.
    kube_context: str | None = None
    kube_namespace: str | None = None
    # Run observers (pipeline/observers): each is on when its settings are present.
    slack_webhook_url: SecretStr | None = None
    github_token: SecretStr | None = None
    github_repository: str | None = Field(None, pattern=r"^[\w.-]+/[\w.-]+$")  # OWNER/NAME
    github_api_url: str | None = None  # None: the public API
    # With GITHUB_REPOSITORY and GITHUB_RUN_ID (set by Actions): the run's log URL.
    github_server_url: str | None = None
    github_run_id: str | None = None
    # A notification never stalls a run: each request is bounded, retried on 5xx/429 at most
    # notify_attempts times in all, with exponential backoff from notify_retry_delay, and a
    # server's Retry-After honoured up to notify_max_retry_delay seconds.
    notify_timeout: float = Field(5.0, gt=0)
    notify_attempts: int = Field(3, ge=1, le=10)
    notify_retry_delay: float = Field(0.5, ge=0)
    notify_max_retry_delay: float = Field(10.0, ge=0)

    # The vercel deploy target (pipeline/targets/vercel.py): which Vercel project gets the site,
    # and how long `vercel deploy` may wait for the deployment to be ready. VERCEL_API_URL is
    # the CLI's hidden `--api` option (tests point it at a stand-in); unset: Vercel's own API.
    vercel_token: SecretStr | None = None  # read by the CLI from its environment, never argv
    vercel_org_id: str | None = None
    vercel_project_id: str | None = None
    vercel_api_url: str | None = None
    vercel_deploy_timeout: float = Field(900.0, gt=0)

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL: `DATABASE_URL`, or a SQLite file under the data directory."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / DATABASE_FILE_NAME).resolve()}"

    @property
    def site_build_dir(self) -> Path:
        """The directory build-frontend builds the site into."""
        if self.frontend_build_dir is not None:
            return self.frontend_build_dir
        return self.frontend_dir / "build"

    @property
    def node_modules_cache(self) -> Path:
        """The folder of cached node_modules: `NODE_MODULES_CACHE_DIR`, or the user's cache."""
        if self.node_modules_cache_dir is not None:
            return self.node_modules_cache_dir
        return self.xdg_cache_home / "textbook" / "node_modules"

    @property
    def qdrant_local_path(self) -> Path:
        """The local-mode vector store folder: `QDRANT_PATH`, or `<data_dir>/qdrant`."""
        return self.qdrant_path if self.qdrant_path is not None else self.data_dir / "qdrant"


@lru_cache
def get_settings() -> Settings:
    return Settings()
