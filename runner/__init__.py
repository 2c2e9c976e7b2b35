"""The worker: checks a submission out, runs it in a sandbox, records the result in MLflow."""
