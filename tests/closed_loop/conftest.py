"""Fixtures of the closed-loop tests."""

from closed_loop_helpers import fast_mad  # noqa: F401
