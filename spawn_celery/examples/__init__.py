"""Example actors used by the quickstart (``spawn-celery dev``) and the README."""
