"""Shared fixtures: the real packaged model (loaded once) and small corpora on disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from textbook_api.rag.embedders import LocalEmbedder
from textbook_api.rag.store import open_client


@pytest.fixture(scope="session")
def embedder() -> LocalEmbedder:
    return LocalEmbedder(batch_size=16)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[QdrantClient]:
    c = open_client(tmp_path / "qdrant")
    yield c
    c.close()


BOOK: dict[str, str] = {
    "intro.md": """
        ---
        id: intro
        title: Introduction
        sidebar_position: 1
        ---
        # Introduction

        Physical AI studies machines that perceive and act in the physical world.

        ## Why bodies matter

        A body closes the loop between perception and action. Errors compound over time.

        ## How to read this book

        Read the chapters in order, then try the exercises at the end of each chapter.
        """,
    "locomotion.md": """
        ---
        title: Locomotion
        ---
        # Locomotion

        Walking robots must balance while moving their feet.

        ## Zero moment point

        The zero moment point must stay inside the support polygon formed by the feet
        for a walking robot to remain dynamically balanced.

        ## Capture point

        The capture point is where a robot must step to come to a complete stop.
        """,
    "ros/nodes.mdx": """
        ---
        title: ROS 2 nodes
        slug: /ros2/nodes
        ---
        import Tabs from '@theme/Tabs';

        # ROS 2 nodes

        <Tabs>A node is a process that performs computation in a ROS 2 graph.</Tabs>

        ## Publishers and subscribers

        Nodes exchange messages on named topics through publishers and subscribers.

        ## Launch files

        Launch files start many nodes at once with their parameters.
        """,
    "grasping.md": """
        # Grasping

        Robot hands grasp objects using friction at the contact points.

        ## Friction cones

        The contact force must stay inside the friction cone to avoid slipping.

        ## Suction grippers

        Suction cups hold flat objects with a vacuum pump.
        """,
}
