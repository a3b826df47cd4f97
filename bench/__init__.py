"""Benchmarks of the hosted endpoints against reference servers; not part of the test suite.

Run from the repository root, e.g. `.venv/bin/python -m bench.sftp all`; each benchmark
prints a table and rewrites its own section of `bench/README.md`.
"""
