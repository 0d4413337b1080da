"""Dining: restaurant reservations with deposits.

Contexts (each owns a PostgreSQL schema): restaurant, reservation, deposit, recommendation, and
the customer_center read model. They talk only through the messages in ``messages.py``.
"""
