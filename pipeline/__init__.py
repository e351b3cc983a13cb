"""The one implementation of every delivery operation: tasks.py and scripts/ are doors into it."""
