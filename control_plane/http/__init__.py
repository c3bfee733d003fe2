"""The control plane's HTTP surface: the REST API under /api/v1, /metrics and /healthz."""
