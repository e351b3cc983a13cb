"""RAG backend for the Physical AI & Humanoid Robotics textbook."""
