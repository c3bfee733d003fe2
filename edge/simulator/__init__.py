"""Simulated terminals: the real agent code with simulated health, many per process."""
