"""The brand application's own tests, written with ``stepwork.testing`` (see docs/testing.md)."""
