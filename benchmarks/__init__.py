"""Benchmarks of fleet-ecs against a simulated fleet in its own process (not part of the tests).

See ``benchmarks/README.md``: ``python -m benchmarks.scan_bench`` and
``python -m benchmarks.fetch_bench``.
"""
