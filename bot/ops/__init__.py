"""What an operator watches: Prometheus metrics, readable event log lines, the JSON log format."""
