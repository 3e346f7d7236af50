"""Benchmarks that write a report (JSON + Markdown + plots)."""
