"""What the tests and the benchmarks share: realistic generated data and the service run as real processes."""
