"""Pure domain model: one package per bounded context. No I/O, no frameworks."""
