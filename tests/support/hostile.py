"""Submissions that attack the instance, the host and other jobs the ways that worked before jobs
were confined; both executors' tests run them. Each attempt prints `<what>: refused (<error>)` or
`<what>: allowed <result>`. Placeholders in capitals (HOME, API, ...) are filled in by the test."""

PROBE = '''import ctypes
import json
import os
import socket

import mlflow


def attempt(label, action):
    try:
        result = action()
        print(f"{label}: allowed {str(result)[:60]!r}", flush=True)
    except OSError as exc:
        print(f"{label}: refused ({type(exc).__name__})", flush=True)


def write(path):
    with open(path, "w") as f:
        f.write("owned")

'''


HOSTILE_MAIN = PROBE + '''
def main():
    home, data = HOME, DATA
    attempt("read config", lambda: open(f"{home}/leadersboard.yaml").read())
    attempt("read database", lambda: open(f"{home}/leadersboard.db", "rb").read(16))
    attempt("read repository", lambda: open(f"{home}/submissions.git/config").read())
    attempt("list repository", lambda: os.listdir(f"{home}/submissions.git/refs"))
    attempt("read mlflow store", lambda: open(f"{home}/mlflow.db", "rb").read(16))
    attempt("read other job", lambda: open(f"{home}/scratch/OTHER/secret.txt").read())
    attempt("write data set", lambda: write(f"{data}/pcb1/owned"))
    attempt("write data here", lambda: write("pcb1/owned"))
    attempt("write site", lambda: write(f"{home}/site/owned"))
    attempt("write instance", lambda: write(f"{home}/owned"))
    for name, port in (("api", API), ("redis", REDIS), ("mlflow", MLFLOW)):
        attempt(f"reach {name}", lambda: socket.create_connection(("127.0.0.1", port), timeout=3).close())
    attempt("reach internet", lambda: socket.create_connection(("192.0.2.1", 80), timeout=3).close())
    print(f"data: {sorted(os.listdir('pcb1'))}", flush=True)
    with mlflow.start_run():
        mlflow.log_metric("auroc", 0.77)


if __name__ == "__main__":
    main()
'''


ESCAPES_MAIN = PROBE + '''CLONE_NEWNET = 0x40000000


def join_network_of(pid):
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


def mount_over_tmp():
    if ctypes.CDLL(None, use_errno=True).mount(b"none", b"/tmp", b"tmpfs", 0, None) != 0:
        raise OSError(ctypes.get_errno(), "mount")


def main():
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    print(f"visible pids: {json.dumps(pids)}", flush=True)
    print(f"pid 1 runs: {open('/proc/1/cmdline', 'rb').read().replace(bytes(1), b' ').decode()[:300]}", flush=True)
    for pid in sorted({os.getppid(), 1, SERVE, *pids} - {os.getpid()}):
        attempt(f"setns {pid}", lambda: join_network_of(pid))
        attempt(f"environ {pid}", lambda: b"REDIS" in open(f"/proc/{pid}/environ", "rb").read())
    attempt("reach api", lambda: socket.create_connection(("127.0.0.1", API), timeout=3).close())
    attempt("mount", mount_over_tmp)
    with mlflow.start_run():
        mlflow.log_metric("auroc", 0.5)


if __name__ == "__main__":
    main()
'''


DAEMON_MAIN = '''import os
import sys
import time

import mlflow


def main():
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:  # a daemon: its own session, no parent, an empty environment
            os.execve(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)  # MARKER"], {})
        os._exit(0)
    deadline = time.monotonic() + 10
    while not any(b"MARKER" in open(f"/proc/{p}/cmdline", "rb").read()
                  for p in os.listdir("/proc") if p.isdigit() and p != str(os.getpid())):
        assert time.monotonic() < deadline, "the daemon did not start"
        time.sleep(0.1)
    print("daemon running", flush=True)
    with mlflow.start_run():
        mlflow.log_metric("auroc", 0.5)


if __name__ == "__main__":
    main()
'''


ALLOCATE_MAIN = '''def main():
    blocks = []
    for n in range(1, 13):  # 3 GiB, a quarter at a time, every page written
        blocks.append(b"x" * (256 * 1024 * 1024))
        print(f"holding {n * 256} MiB", flush=True)


if __name__ == "__main__":
    main()
'''


FILL_MAIN = '''import errno
import os

import mlflow


def main():
    written = 0
    try:
        with open("filler", "wb") as f:
            while written < 2048:  # 2 GiB
                f.write(b"x" * (16 * 1024 * 1024))
                f.flush()
                written += 16
    except OSError as exc:
        print(f"disk full after {written} MiB ({errno.errorcode[exc.errno]})", flush=True)
    else:
        print(f"wrote {written} MiB", flush=True)
    os.remove("filler")
    with mlflow.start_run():
        mlflow.log_metric("auroc", 0.5)


if __name__ == "__main__":
    main()
'''


# Looks everywhere it can for what would give the labels away; prints one FOUND line per find.
LABEL_WALKER = '''import os

import mlflow

SECRETS = SECRET_NAMES


def main():
    found = []
    for top in ("/",):
        for root, dirs, files in os.walk(top, onerror=lambda error: None):
            if root.startswith(("/proc", "/sys", "/dev")):
                dirs[:] = []
                continue
            for name in dirs + files:
                path = os.path.join(root, name)
                if name in ("truth.json", "1cls.csv", "ground_truth", "Masks") or any(s in path for s in SECRETS):
                    found.append(path)
    for path in found[:50]:
        print("FOUND", path, flush=True)
    print(f"walked; {len(found)} found", flush=True)
    print("test dir:", sorted(os.listdir(os.environ["LEADERSBOARD_TEST_DIR"]))[:3], flush=True)
    with mlflow.start_run():
        mlflow.log_metric("auroc", 0.5)
    with open(os.environ["LEADERSBOARD_PREDICTIONS"], "w") as f:
        f.write("image,score\\n")
        for name in sorted(os.listdir(os.environ["LEADERSBOARD_TEST_DIR"])):
            f.write(f"{name},0.5\\n")


if __name__ == "__main__":
    main()
'''
