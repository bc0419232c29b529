"""Stand-ins that the tests and the benchmarks both run against: a fake vLLM, and real vLLM on the tiny model."""
