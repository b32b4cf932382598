"""Benchmarks that report measured numbers (never asserted: tests assert behaviour)."""
