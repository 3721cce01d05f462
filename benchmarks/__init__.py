"""Benchmarks of stepwork against the peers' workloads (W1..W5); run with ``python -m benchmarks.run``."""
