"""Simulated terminals: the same agent code, with simulated health and peripherals, many per process."""
