"""Benchmarks (not tests): run them by hand, figures go to bench/RESULTS.md."""
