"""What runs the platform on one machine without outside services: a private redis-server, a
private MLflow tracking server, and small generated data sets (for `serve`, the demo, tests and
benchmarks)."""
