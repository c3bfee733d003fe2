"""Grafana: dashboards generated from code (build.py) and the file provisioning Grafana reads."""
