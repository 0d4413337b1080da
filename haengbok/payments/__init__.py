"""Adapters of the payment provider port (``domain.payments``): the HTTP client with its
circuit breaker, the sandbox provider the project ships, and an in-memory fake for tests."""
