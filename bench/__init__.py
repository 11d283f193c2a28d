"""Benchmarks: our actor runtime against raw Celery on the same Redis, in one run (``python -m bench.run``)."""
