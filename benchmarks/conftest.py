"""Benchmarks share the tests' compiled image of the shipped policy."""

from tests.conftest import flight_image  # noqa: F401  (a pytest fixture)
