"""Secrets are masked wherever they come from: the environment, `.env`, or inside a URL setting.

The secrets are taken from the same `Settings` the process uses, so a value the process can
use is a value it masks. The end-to-end case runs the real CLI in a directory holding a `.env`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import TEST_DATABASE
from pipeline.audit import table
from test_recording import rows_of
from textbook_api.config import Settings, get_settings
from textbook_api.logs import RedactingJsonFormatter
from textbook_api.main import create_app
from textbook_api.redaction import MASK, Redactor, secret_values

TOKEN = "dotenv-token-7f3a91c2"
QDRANT_PASSWORD = "qdrant-pw-5b8e04d1"


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting from the test runner's environment: only what each test gives."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name in ("VERCEL_TOKEN", "RAILWAY_TOKEN", "SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)


def test_secret_settings_and_url_passwords_are_secrets(clean_environ: None) -> None:
    settings = Settings(
        deploy_api_token=TOKEN,
        qdrant_url="https://reader:p%40ss-w0rd@qdrant.internal:6333",
        cohere_base_url="http://proxy-user:proxy-secret-9@127.0.0.1:8080/v2",
        database_url="postgresql://app:db-secret-42@db:5432/textbook",
        environment="staging",
    )
    values = secret_values(settings, environ={})
    assert set(values) == {TOKEN, "p%40ss-w0rd", "p@ss-w0rd", "proxy-secret-9", "db-secret-42"}
    assert values == sorted(values, key=len, reverse=True)  # a longer secret is masked whole
    redact = Redactor(values)
    assert redact(f"decoded p@ss-w0rd, token {TOKEN}") == f"decoded {MASK}, token {MASK}"
    # Not a secret: the settings that are not, the user names inside URLs, and the database a
    # URL names (only its password is secret).
    assert redact("staging reader proxy-user app") == "staging reader proxy-user app"
    assert redact("postgresql://app:db-secret-42@db:5432/textbook") == (
        f"postgresql://app:{MASK}@db:5432/textbook")
    sqlite = Settings(database_url="sqlite:////srv/textbook/textbook.db")
    assert secret_values(sqlite, environ={}) == []


def test_target_tokens_come_from_the_environment_and_short_values_are_ignored(
    clean_environ: None,
) -> None:
    environ = {"VERCEL_TOKEN": "vercel-token-123", "RAILWAY_TOKEN": "abc", "LOG_LEVEL": "INFO"}
    assert secret_values(Settings(), environ=environ) == ["vercel-token-123"]


def test_the_json_log_masks_every_string_even_escaped_ones(clean_environ: None) -> None:
    secret = 'quote"and\\slash'
    formatter = RedactingJsonFormatter(Redactor([secret]))
    record = logging.LogRecord("pipeline", logging.INFO, __file__, 1, "token %s", (secret,), None)
    record.data = {"nested": [secret], "path": Path("/srv") / secret}
    line = formatter.format(record)
    entry = json.loads(line)
    assert entry["message"] == f"token {MASK}"
    assert entry["data"] == {"nested": [MASK], "path": f"/srv/{MASK}"}
    assert entry["level"] == "info" and entry["logger"] == "pipeline"
    assert "quote" not in line


def test_status_tables_keep_one_line_per_row_and_print_cells_as_text() -> None:
    message = "[bold]not markup[/bold] " + "x" * 300
    lines = table(["JOB", "MESSAGE"], [["1", message], ["22", "short"]])
    assert lines[0].split() == ["JOB", "MESSAGE"]
    assert lines[2].split(maxsplit=1) == ["1", message]
    assert lines[3].split() == ["22", "short"]
    assert len(lines) == 4
    assert lines[2].index(message) == lines[3].index("short")  # the columns line up


def _environ_without_settings() -> dict[str, str]:
    names = {name.upper() for name in Settings.model_fields}
    return {k: v for k, v in os.environ.items() if k not in names}


@pytest.mark.integration
def test_secrets_in_dotenv_are_masked_in_output_logs_records_and_the_api(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, clean_environ: None,
) -> None:
    if TEST_DATABASE == "postgres":  # trust auth ignores the password, so it can be the secret
        database_url = database_url.replace("postgres@", "postgres:db-pw-0c6d2e9a@", 1)
    work = tmp_path / "work"
    work.mkdir()
    data = tmp_path / "data"
    (work / ".env").write_text(
        f"DATA_DIR={data}\nDATABASE_URL={database_url}\nDEPLOY_API_TOKEN={TOKEN}\n"
        f"QDRANT_URL=http://reader:{QDRANT_PASSWORD}@127.0.0.1:9\n",
        encoding="utf-8",
    )
    # Who ran it is recorded and shown: here it carries both secrets, to leak if unmasked.
    env = {**_environ_without_settings(), "GITHUB_REF_NAME": f"feature/{TOKEN}",
           "GITHUB_ACTOR": f"bot-{QDRANT_PASSWORD}"}
    outputs = []
    for args in (["run-migrations"], ["status"], ["status", "--job", "1"]):
        result = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=work, env=env,
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        outputs += [result.stdout, result.stderr]
    assert f"by bot-{MASK}" in outputs[4]  # status --job shows the recorded actor, masked
    # The plan names the database; only a password in its URL is masked.
    if TEST_DATABASE == "sqlite":
        assert f"database {database_url}, " in outputs[0]
    else:
        assert f"database postgresql+psycopg://postgres:{MASK}@127.0.0.1" in outputs[0]

    monkeypatch.chdir(work)
    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}  # the token of .env is the server's
        event = client.post("/api/v1/jobs/1/events", headers=auth,
                            json={"message": f"{TOKEN} {QDRANT_PASSWORD}",
                                  "data": {"k": [TOKEN]}})
        assert event.status_code == 201, event.text
        responses = [event.text, client.get("/api/v1/jobs/1").text]
    get_settings.cache_clear()

    logs = [path.read_text() for path in (data / "logs").glob("*.jsonl")]
    assert logs
    everything = "\n".join(outputs + responses + logs + [repr(rows_of(database_url))])
    assert f"feature/{MASK}" in everything
    assert TOKEN not in everything
    assert QDRANT_PASSWORD not in everything
