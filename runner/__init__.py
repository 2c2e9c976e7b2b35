"""The worker: checks a submission out, runs it in a sandbox, records the result in MLflow; and the
host-side control of jobs (their processes and containers) with the job reconciler."""
