"""Benchmarks of migration-guard (`make bench`, or `python -m bench --help`); see docs/performance.md."""
