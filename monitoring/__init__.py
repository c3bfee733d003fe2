"""Monitoring as code: metric names, Prometheus config and, later, rules and dashboards."""
