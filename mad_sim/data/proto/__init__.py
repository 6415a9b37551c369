"""Compiled WOMD protos (our own wire-compatible copy)."""
