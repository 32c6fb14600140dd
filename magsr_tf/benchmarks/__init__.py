"""Benchmarks that print throughput figures and ratios to in-run references."""
