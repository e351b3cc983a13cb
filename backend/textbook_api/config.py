"""Settings in one place: every process (API, migrations, pipeline) reads them from here."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
DATABASE_FILE_NAME = "textbook.db"

# Environment variables whose values are secrets: redacted wherever text leaves the process.
SECRET_ENV_VARS = (
    "DEPLOY_API_TOKEN",
    "COHERE_API_KEY",
    "QDRANT_API_KEY",
    "VERCEL_TOKEN",
    "RAILWAY_TOKEN",
    "SLACK_WEBHOOK_URL",
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

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL: `DATABASE_URL`, or a SQLite file under the data directory."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / DATABASE_FILE_NAME).resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
