"""Benchmarks: each prints a JSON result and a Markdown table (never timed unit tests)."""
