"""Helpers for the test suites: a pytest plugin with a shared anvil devnet (see fixtures.py)."""
