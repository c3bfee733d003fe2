"""Monitoring as code: the metric names, Prometheus configuration and (later) rules and dashboards."""
