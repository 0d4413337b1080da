"""Composition root: settings, bootstrap, embedded PostgreSQL, CLI. It wires; it does not decide."""
