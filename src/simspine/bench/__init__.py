"""Benchmarks behind ``simspine bench``: each prints a table with the peer measured in the same run."""
