"""Dining's application layer: each context's use cases (SQL + domain), its message
subscribers and its command endpoints. The read side lives in ``projections.dining`` and
``api.dining.queries``."""
