"""Seeded model definitions that benchmarks and stages share (no downloads, no training)."""
