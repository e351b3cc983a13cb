"""The one implementation of every delivery operation; invoke tasks and scripts/ are doors into it."""
