"""Benchmark: the service against its own ceiling and against a naive server (python -m bench.run)."""
