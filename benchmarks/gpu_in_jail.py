"""One GPU per job, on real hardware: a job per GPU at once through the process executor's jail.

Each job is the jail's real launcher (`python -m leadersboard.runner.jail`, as a worker starts it)
running a PyTorch probe as the unprivileged sandbox user with CUDA_VISIBLE_DEVICES set to its GPU,
as `leadersboard worker --gpus 0,1,...` gives each of its worker processes one device. Printed: what
each job saw (visible devices, their count, the device's name and UUID) and a bf16 matrix product's
speed inside the jail against the same probe outside it (target: one device each, all distinct, the
jail's speed ≥ 0.95 of the plain run's). On a host without an NVIDIA GPU it says so and stops.

    .venv/bin/python benchmarks/gpu_in_jail.py [--gpus 0,1]      (as root: the jail needs it)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from leadersboard.runner.jail import JailSpec
from leadersboard.runner.process_executor import interpreter_folders

UID = 10001
PROBE = """
import json, os, time, torch
x = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
for _ in range(3):
    x @ x
torch.cuda.synchronize()
start = time.perf_counter()
for _ in range(10):
    x @ x
torch.cuda.synchronize()
seconds = (time.perf_counter() - start) / 10
props = torch.cuda.get_device_properties(0)
print(json.dumps({"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "count": torch.cuda.device_count(),
                  "name": props.name, "uuid": str(props.uuid), "tflops": round(2 * 8192**3 / seconds / 1e12, 1),
                  "uid": os.getuid()}))
"""


def gpus_here() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False).stdout
    return [str(n) for n, line in enumerate(listed.splitlines()) if line.startswith("GPU ")]


def plain(gpu: str) -> dict[str, object]:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def jailed(gpus: list[str], base: Path) -> list[dict[str, object]]:
    """A jailed probe per GPU, all started before any is waited for."""
    started = []
    for gpu in gpus:
        scratch = base / f"job-{gpu}"
        scratch.mkdir()
        os.chown(scratch, UID, UID)
        read, write = os.pipe()
        spec = JailSpec(command=[sys.executable, "-c", PROBE],
                        env={"CUDA_VISIBLE_DEVICES": gpu, "HOME": str(scratch), "PATH": "/usr/bin:/bin"},
                        workdir=str(scratch), scratch=str(scratch), uid=UID, gid=UID, parent=os.getpid(),
                        status_fd=write, hidden=[str(base / "instance"), str(Path.home())],
                        readable=interpreter_folders(sys.executable), tmp_size="2g", shm_size="1g")
        # The spec through a file on stdin (a pipe would need writing while the others start).
        spec_file = base / f"spec-{gpu}.json"
        spec_file.write_text(spec.to_json())
        with spec_file.open() as stdin:
            launcher = subprocess.Popen([sys.executable, "-m", "leadersboard.runner.jail"], stdin=stdin,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, pass_fds=[write],
                                        cwd=base)  # not a checkout, whose folders would shadow the package
        os.close(write)
        started.append((gpu, launcher, read))
    results = []
    for gpu, launcher, read in started:
        out, err = launcher.communicate(timeout=600)
        setup = os.read(read, 4096).decode()
        os.close(read)
        if launcher.returncode:
            raise SystemExit(f"GPU {gpu}: the jailed job exited {launcher.returncode}: {setup} {err[-2000:]}")
        results.append(dict(json.loads(out.strip().splitlines()[-1])))
    return results


def main() -> int:
    wanted = sys.argv[sys.argv.index("--gpus") + 1].split(",") if "--gpus" in sys.argv else gpus_here()
    if not wanted:
        print("no NVIDIA GPU on this host: nothing to measure")
        return 0
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        os.chmod(base, 0o755)
        (base / "instance").mkdir()
        (base / "instance" / "secret.txt").write_text("hidden from jobs")
        outside = plain(wanted[0])
        inside = jailed(wanted, base)
    print(f"outside the jail, GPU {wanted[0]}: {outside}")
    for result in inside:
        print(f"in the jail: {result}")
    uuids = [r["uuid"] for r in inside]
    print(f"jobs: {len(inside)}, each saw one device: {all(r['count'] == 1 for r in inside)}, "
          f"distinct devices: {len(set(uuids)) == len(uuids)}, ran as uid {sorted({str(r['uid']) for r in inside})}")
    ratio = float(str(inside[0]["tflops"])) / float(str(outside["tflops"]))
    print(f"bf16 8192³ product: {inside[0]['tflops']} TFLOP/s in the jail, {outside['tflops']} outside, "
          f"ratio {ratio:.3f} (target ≥ 0.95)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
