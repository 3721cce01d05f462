"""Fault-injection regression tests: database outages, killed and frozen processes, races.

Each test injects its fault itself, on loopback (see :mod:`tests.engine.faults.harness`).
"""
