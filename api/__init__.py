"""Litestar app: controllers per context, auth, problem details, health, metrics, ops."""
