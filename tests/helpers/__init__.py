"""Reusable test helpers (brokers, clients) shared by every suite."""
