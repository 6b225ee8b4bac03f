"""Helpers the tests and the benchmarks share (small crop maps, tile arithmetic written
independently of the code under test). The product never imports this package."""
