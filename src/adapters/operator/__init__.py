"""What the operator sees: the log's layout, /metrics, /healthz and /readyz."""
