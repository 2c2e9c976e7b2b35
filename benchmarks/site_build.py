"""Site build time at 1,000 and 10,000 finished jobs (target: <= 5 s at 10,000).

One scratch MLflow store (sqlite, ~10 benchmarks, a few hundred users) is filled through a local
`sqlite:///` URI, which is much faster to write than the server, with runs shaped like the worker's:
platform tags, `auroc` / `f1_score` / `runtime_seconds`, a dozen params and extra metrics of the
submission's own, FINISHED with end times ~11 minutes apart. The build is then timed, at each size,
against the same store read two ways: directly (`sqlite:///`) and through a running MLflow server
(what `serve` and the workers use). For each:

  cold  no cache: every completed run is read from MLflow, every page rendered;
  warm  with the incremental cache, after 10 more jobs finished: only runs that ended since the
        newest cached one (minus a 10-minute overlap) are read; every page is still rendered.

Prints medians of --repeat builds, the fetch/render split, the 10k/1k growth and which build meets
the target.

    .venv/bin/python benchmarks/site_build.py [--sizes 1000,10000] [--repeat 3] [--stores sqlite,server] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from leadersboard import contract as names
from leadersboard import db
from leadersboard.local.mlflow_server import MlflowServer, backend_store_uri, start_mlflow
from leadersboard.site_generator import SiteReport, build_site

BENCHMARKS = [f"visa/{c}" for c in ("pcb1", "pcb2", "pcb3", "pcb4", "candle", "capsules")] + [
    f"mvtec/{c}" for c in ("bottle", "cable", "carpet", "screw")]
USERS = [f"user{n:03d}" for n in range(300)]
METHODS = ["Padim", "PatchCore", "EfficientAd", "Stfpm", "Fastflow"]
SPACING_MS = 11 * 60 * 1000  # one job finishing every 11 minutes: 10,000 jobs span ~76 days
TARGET_SECONDS = 5.0


class Store:
    """The scratch store, filled in order of finish time (the newest job last)."""

    def __init__(self, uri: str, db_path: Path, seed: int = 7) -> None:
        self.client = MlflowClient(uri)
        self.db_path = db_path  # the instance database: its job index says which runs are jobs
        db.create_schema(db_path)
        self.random = random.Random(seed)
        self.experiments: dict[str, str] = {}
        self.jobs = 0
        self._rows: list[tuple[str, str, str, str, str, str, float]] = []

    def experiment(self, benchmark: str) -> str:
        if benchmark not in self.experiments:
            found = self.client.get_experiment_by_name(benchmark)
            self.experiments[benchmark] = found.experiment_id if found else self.client.create_experiment(benchmark)
        return self.experiments[benchmark]

    def add_jobs(self, count: int, last_end_ms: int, spacing_ms: int = SPACING_MS) -> None:
        """`count` finished jobs, the last ending at `last_end_ms`, `spacing_ms` apart."""
        for k in range(count):
            self.finish_job(last_end_ms - (count - 1 - k) * spacing_ms)
        self._index()

    def _index(self) -> None:
        """The rows the service writes for each job (submission and job index), in one transaction."""
        with db.connect(self.db_path) as conn:
            for run_id, sub_id, user, benchmark, folder, commit, submitted in self._rows:
                conn.execute("INSERT INTO submissions (id, user, commit_id, folder, ref, tree_id, entrypoint, "
                             "config_file, benchmark, metadata, run, created_at, job_id) "
                             "VALUES (?, ?, ?, ?, 'refs/heads/x', '', 'main.py', 'config.yaml', ?, '{}', 1, ?, ?)",
                             (sub_id, user, commit, folder, benchmark, submitted, run_id))
                conn.execute("INSERT INTO jobs (id, run_id, submission_id, user, benchmark, created_at) "
                             "VALUES (?, ?, ?, ?, ?, ?)", (run_id, run_id, sub_id, user, benchmark, submitted))
        self._rows.clear()

    def finish_job(self, end_ms: int) -> None:
        rnd = self.random
        benchmark = rnd.choice(BENCHMARKS)
        user = rnd.choice(USERS)
        runtime = rnd.uniform(20, 900)
        submitted = end_ms / 1000 - runtime - rnd.uniform(1, 120)
        self.jobs += 1
        tags = {
            names.TAG_STATUS: "completed", names.TAG_USER: user, names.TAG_FOLDER: f"sub-{self.jobs:05d}",
            names.TAG_SUBMISSION_ID: secrets.token_hex(8), names.TAG_COMMIT: secrets.token_hex(20),
            names.TAG_BENCHMARK: benchmark, names.TAG_SUBMITTED_AT: f"{submitted:.3f}",
            names.TAG_METHOD: rnd.choice(METHODS), names.TAG_GIT_COMMIT: secrets.token_hex(20),
        }
        run = self.client.create_run(self.experiment(benchmark), start_time=int(submitted * 1000), tags=tags)
        run_id = run.info.run_id
        auroc = min(1.0, rnd.betavariate(8, 2))
        metrics = [Metric(names.METRIC_AUROC, auroc, end_ms, 0),
                   Metric(names.METRIC_F1, min(1.0, auroc * rnd.uniform(0.7, 1.0)), end_ms, 0),
                   Metric(names.METRIC_RUNTIME, runtime, end_ms, 0),
                   Metric("image_AUROC", auroc, end_ms, 0), Metric("pixel_AUROC", rnd.random(), end_ms, 0)]
        # What a submission logs of its own: the model's settings.
        params = [Param(f"model.{key}", str(rnd.randint(1, 512))) for key in
                  ("backbone_layers", "image_size", "batch_size", "n_features", "coreset_ratio", "seed",
                   "epochs", "learning_rate", "num_neighbors", "pre_trained", "eval_batch_size", "workers")]
        self.client.log_batch(run_id, metrics=metrics, params=params, tags=[RunTag(names.TAG_JOB_ID, run_id)])
        self.client.set_terminated(run_id, "FINISHED", end_time=end_ms)
        self._rows.append((run_id, tags[names.TAG_SUBMISSION_ID], user, benchmark, tags[names.TAG_FOLDER],
                           tags[names.TAG_COMMIT], submitted))


@dataclass
class Timing:
    seconds: float
    fetch: float
    render: float
    fetched: int
    entries: int


def timed(reports: list[SiteReport]) -> Timing:
    middle = sorted(reports, key=lambda report: report.seconds)[len(reports) // 2]
    return Timing(statistics.median(r.seconds for r in reports), middle.fetch_seconds, middle.render_seconds,
                  middle.fetched, middle.entries)


def measure(uri: str, label: str, work: Path, store: Store, repeat: int) -> tuple[Timing, Timing]:
    out = work / f"site-{label}"
    cold = [build_site(uri, store.db_path, out) for _ in range(repeat)]
    assert all(report.cold for report in cold)
    cache = work / f"cache-{label}-{store.jobs}.json"
    assert build_site(uri, store.db_path, out, cache).cold  # fills the cache
    warm = []
    for _ in range(repeat):
        store.add_jobs(10, int(time.time() * 1000), spacing_ms=1000)  # a burst that just finished
        report = build_site(uri, store.db_path, out, cache)
        assert not report.cold and report.entries == store.jobs, "the warm build lost a job"
        warm.append(report)
    return timed(cold), timed(warm)


def verdict(timing: Timing) -> str:
    return "meets" if timing.seconds <= TARGET_SECONDS else "misses"


def line(store_label: str, jobs: int, kind: str, timing: Timing) -> str:
    return (f"{store_label:<7} {jobs:>6} {kind:<5} {timing.seconds:7.2f} s   (read {timing.fetched:>6} runs "
            f"{timing.fetch:6.2f} s, render+publish {timing.render:5.2f} s; {timing.entries} entries on the site)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="finished jobs, ascending, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="builds per measurement (the median is shown)")
    parser.add_argument("--stores", default="sqlite,server", help="read the store directly, through a server, or both")
    parser.add_argument("--work", type=Path, help="keep the scratch store, sites and server log here (a new folder)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    wanted = set(args.stores.split(","))

    with tempfile.TemporaryDirectory(prefix="site-build-bench-") as scratch:
        work = Path(scratch) if args.work is None else args.work
        work.mkdir(parents=True, exist_ok=args.work is None)
        server: MlflowServer | None = None
        uri = backend_store_uri(work / "mlflow")
        try:
            if "server" in wanted:
                server = start_mlflow(work / "mlflow")  # creates the database the local URI then writes
            store = Store(uri, work / "leadersboard.db")
            # Past jobs end before "now"; the warm builds' new jobs end at the real time.
            end = int(time.time() * 1000) - 3_600_000
            results: dict[tuple[str, int], tuple[Timing, Timing]] = {}
            for size in sizes:
                started = time.perf_counter()
                missing = size - store.jobs
                store.add_jobs(missing, end - (sizes[-1] - size) * SPACING_MS)
                print(f"filled {size} finished jobs ({missing} added in {time.perf_counter() - started:.0f} s)",
                      flush=True)
                stores = [("sqlite", uri)] if "sqlite" in wanted else []
                stores += [("server", server.url)] if server else []
                for label, store_uri in stores:
                    results[(label, size)] = measure(store_uri, label, work, store, args.repeat)
                    cold, warm = results[(label, size)]
                    print(line(label, size, "cold", cold), flush=True)
                    print(line(label, size, "warm", warm), flush=True)
        except Exception:
            if server is not None:
                print(f"server log ({server.log_path}):\n{server.log_path.read_text(errors='replace')[-3000:]}")
            raise
        finally:
            if server is not None:
                server.stop()

    print("\nsummary (median seconds per build)")
    print(f"{'store':<7} {'jobs':>6} {'cold':>8} {'warm':>8}")
    for (label, size), (cold, warm) in results.items():
        print(f"{label:<7} {size:>6} {cold.seconds:8.2f} {warm.seconds:8.2f}")
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        for label in ("sqlite", "server"):
            if (label, small) in results and (label, large) in results:
                (c1, w1), (c2, w2) = results[(label, small)], results[(label, large)]
                print(f"growth {label} {large}/{small} jobs: cold x{c2.seconds / c1.seconds:.1f}, "
                      f"warm x{w2.seconds / w1.seconds:.1f}")
    large = sizes[-1]
    for label in ("sqlite", "server"):
        if (label, large) in results:
            cold, warm = results[(label, large)]
            print(f"target <= {TARGET_SECONDS:.0f} s at {large} jobs via {label}: warm {verdict(warm)} it "
                  f"({warm.seconds:.2f} s), cold {verdict(cold)} it ({cold.seconds:.2f} s)")


if __name__ == "__main__":
    main()
