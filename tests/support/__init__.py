"""Builders and helpers shared by the tests and the benchmarks (``from tests.support.tiny_wan import ...``):
a real daemon in a subprocess, the test runners, tiny models in the real file formats."""
