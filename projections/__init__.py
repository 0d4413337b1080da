"""Projection runtime, read models, read-your-writes, exports."""
