"""Look-alikes of the providers Clarion talks to, speaking the same protocols, for tests,
benchmarks and staging: ``clarion fake-providers``."""
