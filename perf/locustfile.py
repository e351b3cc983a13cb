"""Locust user mix for the textbook stack: readers who load pages and ask the book questions.

Run through `nox -s perf` (thresholds in perf/thresholds.toml, checked by pipeline/loadtest.py);
request names group the URLs so each threshold names one endpoint.
"""

from __future__ import annotations

import random
from typing import Any

import requests
from locust import HttpUser, between, events, task

DOC_PAGES = ["introduction", "kinematics", "locomotion", "manipulation", "ros2",
             "sensors-perception", "simulation", "learning-vla", "safety-hri", "capstone"]
SUBJECTS = ["the zero moment point", "a Kalman filter", "inverse kinematics", "a ROS 2 node",
            "series elastic actuators", "sim-to-real transfer", "tactile sensing",
            "model predictive control", "the support polygon", "a lidar scan", "grasp quality",
            "domain randomisation", "whole-body control", "visual odometry",
            "a vision-language-action model", "safe human-robot interaction"]
OPENINGS = ["What is", "How does one use", "Why does a humanoid need", "Explain",
            "What limits", "How do we tune"]


@events.test_start.add_listener
def warm_up(environment: Any, **_: Any) -> None:
    """One question before the clock starts: the first query of a fresh API process loads the
    embedding model and opens the store (seconds on a busy machine), which is start-up cost,
    not the steady state these thresholds are about. Unmeasured; a failure stops nothing."""
    try:
        requests.post(f"{environment.host}/api/v1/query", json={"question": "What is balance?"},
                      timeout=120)
    except requests.RequestException as error:
        print(f"warm-up query failed: {error}")


class Reader(HttpUser):
    """Mostly reading, often asking; now and then a look at the deploy jobs and readiness."""

    wait_time = between(0.5, 1.5)

    @task(3)
    def home(self) -> None:
        self.client.get("/", name="/")

    @task(3)
    def doc_page(self) -> None:
        # The site serves each page at its folder URL; without the slash it redirects.
        self.client.get(f"/docs/{random.choice(DOC_PAGES)}/", name="/docs/[page]")

    @task(4)
    def ask(self) -> None:
        question = f"{random.choice(OPENINGS)} {random.choice(SUBJECTS)}?"
        with self.client.post("/api/v1/query", json={"question": question, "top_k": 5},
                              name="/api/v1/query", catch_response=True) as response:
            # A 200 without passages answers nothing: count it as the failure it is.
            if response.ok and not response.json().get("passages"):
                response.failure("answered without passages")

    @task(1)
    def jobs(self) -> None:
        self.client.get("/api/v1/jobs?limit=20", name="/api/v1/jobs")

    @task(1)
    def ready(self) -> None:
        self.client.get("/ready", name="/ready")
