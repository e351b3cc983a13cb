from fastapi.testclient import TestClient

from textbook_api.main import create_app


def test_health_answers_ok() -> None:
    response = TestClient(create_app()).get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
