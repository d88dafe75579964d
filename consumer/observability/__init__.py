"""What an operator sees: Prometheus metrics, the health endpoints, structured logs."""
