"""Benchmarks of skeleton_anon against the PyTorch reference; see BENCHMARKS.md."""
