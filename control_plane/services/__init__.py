"""Starting and stopping the real processes termfleet runs beside: Mosquitto and Prometheus.

Used by ``termfleet demo``, the test suite and the benchmarks, so all three run the broker with
the project's own configuration.
"""
