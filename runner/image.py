"""The docker executor's sandbox image, built without any registry (`leadersboard image build`).

1. `debootstrap --variant=minbase` makes a root file system of this machine's own release from the
   apt mirror this machine is configured with (read from its apt sources when the build runs);
2. this platform's pip collects wheels of what submissions run with (`pip wheel`: the very versions
   the platform runs, through the same indexes, caches and constraints as its own install), and
   pip inside the root file system installs them into /opt/venv from that folder, offline;
3. `tar | docker import` turns the folder into the image.

The network is used during the build only (debootstrap, and the host's pip where its wheels are not
local). The image carries a digest of its recipe as a label: building again does nothing unless the
recipe changed or `rebuild` is asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path, PurePosixPath

from .containers import DOCKER, DockerError, docker

VENV = PurePosixPath("/opt/venv")
PYTHON = str(VENV / "bin" / "python")  # what runs a submission's entrypoint in the container
RECIPE_LABEL = "leadersboard.recipe"
UID_LABEL = "leadersboard.sandbox_uid"
RECIPE_VERSION = 1  # bump when the build steps change what an image holds
DEBIAN_PACKAGES = ("python3", "python3-venv")
BASE_REQUIREMENTS = ("mlflow", "pyyaml")  # pinned to the platform's own versions
ANOMALIB_EXTRA = "anomalib"  # leadersboard's extra that pins torch, torchvision, anomalib
APT_DIR = Path("/etc/apt")
WHEELS = "wheels"  # the wheel folder inside the root file system during the build
CHROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
              "LANG": "C.UTF-8", "PIP_CONFIG_FILE": os.devnull, "PIP_NO_CACHE_DIR": "1",
              "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
LOG_TAIL_LINES = 30


class ImageError(Exception):
    """The image cannot be built; the message says why and what to do."""


@dataclass(frozen=True)
class AptSource:
    mirror: str
    suite: str


@dataclass(frozen=True)
class ImageRecipe:
    name: str
    requirements: tuple[str, ...]
    uid: int
    source: AptSource
    debian_packages: tuple[str, ...] = DEBIAN_PACKAGES

    @property
    def digest(self) -> str:
        """What the image holds (the mirror is where it comes from, not what it is)."""
        content = {"version": RECIPE_VERSION, "suite": self.source.suite, "debian": self.debian_packages,
                   "requirements": self.requirements, "uid": self.uid}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class BuildReport:
    name: str
    built: bool  # False: the image was up to date
    size_bytes: int
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds

    @property
    def seconds(self) -> float:
        return sum(self.steps.values())


def recipe(name: str, uid: int, with_anomalib: bool = False, apt_dir: Path = APT_DIR) -> ImageRecipe:
    return ImageRecipe(name=name, requirements=requirements(with_anomalib), uid=uid, source=apt_source(apt_dir))


def requirements(with_anomalib: bool) -> tuple[str, ...]:
    """What the image's venv gets: MLflow at the platform's own version (the worker reads the store
    the submission writes), PyYAML, and with anomalib the pins of leadersboard's `anomalib` extra."""
    try:
        pins = [f"{package}=={version(package)}" for package in BASE_REQUIREMENTS]
    except PackageNotFoundError as exc:
        raise ImageError(f"the platform has no {exc.name} installed: run scripts/install.sh") from exc
    if with_anomalib:
        extra = [r.split(";")[0].strip() for r in requires("leadersboard") or []
                 if re.search(rf"extra\s*==\s*['\"]{ANOMALIB_EXTRA}['\"]", r)]
        if not extra:
            raise ImageError("leadersboard's metadata names no anomalib extra: reinstall it (scripts/install.sh)")
        pins += extra
    return tuple(pins)


def apt_source(apt_dir: Path = APT_DIR) -> AptSource:
    """The archive this machine's apt installs its release from: the first `deb` entry whose suite is
    a release (not -updates, -security, -backports), in apt's own order of files."""
    files = [apt_dir / "sources.list"] if (apt_dir / "sources.list").is_file() else []
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources") and p.is_file())
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        entries = _deb822_entries(text) if path.suffix == ".sources" else _one_line_entries(text)
        for uris, suites in entries:
            for suite in suites:
                if "-" not in suite and "/" not in suite:
                    for uri in uris:
                        if uri.startswith(("http://", "https://", "file:/")):
                            return AptSource(uri.rstrip("/"), suite)
    raise ImageError(f"found no Debian or Ubuntu archive in {apt_dir}/sources.list(.d): debootstrap needs one")


def _one_line_entries(text: str) -> Iterable[tuple[list[str], list[str]]]:
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            yield [words[1]], [words[2]]


def _deb822_entries(text: str) -> Iterable[tuple[list[str], list[str]]]:
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
            yield fields.get("uris", "").split(), fields.get("suites", "").split()


def image_labels(name: str) -> dict[str, str] | None:
    """The image's labels; None when there is no such image."""
    try:
        return json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", name)) or {}
    except DockerError:
        return None


def build_image(spec: ImageRecipe, rebuild: bool = False, say: Callable[[str], None] = print) -> BuildReport:
    """Build `spec.name` unless an image of the same recipe exists (or `rebuild`)."""
    _check_tools()
    labels = image_labels(spec.name)
    if labels is not None and labels.get(RECIPE_LABEL) == spec.digest and not rebuild:
        return BuildReport(spec.name, False, _image_size(spec.name))
    report = BuildReport(spec.name, True, 0)
    work = Path(tempfile.mkdtemp(prefix="leadersboard-image-"))
    root, log = work / "rootfs", work / "build.log"
    try:
        with _step(report, "debootstrap", say, f"debootstrap {spec.source.suite} (minbase, "
                                                 f"{', '.join(spec.debian_packages)}) from this machine's apt mirror"):
            _run(["debootstrap", "--variant=minbase", f"--include={','.join(spec.debian_packages)}",
                  spec.source.suite, str(root), spec.source.mirror], log)
        with _step(report, "wheels", say, f"wheels for {' '.join(spec.requirements)}"):
            _same_python(root)
            _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(root / WHEELS),
                  *spec.requirements], log)
        with _step(report, "install", say, f"install into {VENV}"):
            _run(["chroot", str(root), "python3", "-m", "venv", str(VENV)], log, env=CHROOT_ENV)
            pip = ["chroot", str(root), PYTHON, "-m", "pip"]
            _run([*pip, "install", "--quiet", "--no-index", "--find-links", f"/{WHEELS}", *spec.requirements],
                 log, env=CHROOT_ENV)
            _run([*pip, "check"], log, env=CHROOT_ENV)
            _finish_root(root, spec.uid)
        with _step(report, "import", say, f"docker import {spec.name}"):
            _import(root, spec, log)
    except ImageError as exc:
        raise ImageError(f"{exc}\n{_tail(log)}") from None
    finally:
        _unmount_below(root)
        shutil.rmtree(work, ignore_errors=True)
    report.size_bytes = _image_size(spec.name)
    return report


def _check_tools() -> None:
    if os.geteuid() != 0:
        raise ImageError("building the image needs root (debootstrap, chroot): run it as root or with sudo")
    for tool, package in (("debootstrap", "debootstrap"), ("chroot", "coreutils"), ("tar", "tar"),
                          (DOCKER, "docker.io")):
        if shutil.which(tool) is None:
            raise ImageError(f"{tool} is missing: apt-get install {package}")
    try:
        docker("version", "--format", "{{.Server.Version}}")
    except DockerError as exc:
        raise ImageError(f"the Docker engine does not answer ({exc}): start dockerd") from exc


@contextlib.contextmanager
def _step(report: BuildReport, name: str, say: Callable[[str], None], text: str) -> Iterator[None]:
    say(f"{text} ...")
    start = time.monotonic()
    yield
    report.steps[name] = round(time.monotonic() - start, 1)
    say(f"  {report.steps[name]:.0f} s")


def _run(command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
    with log.open("ab") as out:
        out.write(f"$ {' '.join(command)}\n".encode())
        out.flush()
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                check=False)
    if result.returncode != 0:
        raise ImageError(f"{' '.join(command[:4])} ... exited {result.returncode}")


def _same_python(root: Path) -> None:
    """The platform's pip collects the wheels: they must fit the image's Python."""
    probe = "import sys; print('{}.{}'.format(*sys.version_info[:2]))"
    found = subprocess.run(["chroot", str(root), "python3", "-c", probe], capture_output=True, text=True,
                           env=CHROOT_ENV, check=False).stdout.strip()
    here = "{}.{}".format(*sys.version_info[:2])
    if found != here:
        raise ImageError(f"the image's Python is {found or 'missing'}, the platform runs {here}: run the platform "
                         "with the Python of this machine's release (scripts/install.sh does)")


def _finish_root(root: Path, uid: int) -> None:
    """Drop the build's leftovers; name the sandbox's user (libraries ask who they are)."""
    shutil.rmtree(root / WHEELS, ignore_errors=True)
    for folder in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (root / folder).glob("*"):
            if entry.is_file():
                entry.unlink()
    passwd, group = root / "etc/passwd", root / "etc/group"
    if not any(line.split(":")[2:3] == [str(uid)] for line in passwd.read_text().splitlines()):
        with passwd.open("a") as file:
            file.write(f"sandbox:x:{uid}:{uid}:LeadersBoard sandbox:/job/home:/usr/sbin/nologin\n")
    if not any(line.split(":")[2:3] == [str(uid)] for line in group.read_text().splitlines()):
        with group.open("a") as file:
            file.write(f"sandbox:x:{uid}:\n")


def _import(root: Path, spec: ImageRecipe, log: Path) -> None:
    old = _image_id(spec.name)
    changes = [f"LABEL {RECIPE_LABEL}={spec.digest}", f"LABEL {UID_LABEL}={spec.uid}",
               f"ENV PATH={VENV}/bin:/usr/local/bin:/usr/bin:/bin", "ENV LANG=C.UTF-8", f'CMD ["{PYTHON}"]']
    with log.open("ab") as out:
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE,
                               stderr=out)
        assert tar.stdout is not None
        command = [DOCKER, "import", *(arg for change in changes for arg in ("--change", change)), "-", spec.name]
        imported = subprocess.run(command, stdin=tar.stdout, stdout=out, stderr=out, check=False)
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise ImageError(f"tar | docker import {spec.name} failed")
    if old and old != _image_id(spec.name):
        with contextlib.suppress(DockerError):  # still used by a container: docker keeps it
            docker("image", "rm", old)


def _image_id(name: str) -> str | None:
    try:
        return docker("image", "inspect", "--format", "{{.Id}}", name).strip()
    except DockerError:
        return None


def _image_size(name: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", name).strip())


def _unmount_below(root: Path) -> None:
    """A failed debootstrap may leave /proc or /sys mounted inside the root file system."""
    with contextlib.suppress(OSError):
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for point in sorted((m for m in mounts if m.startswith(f"{root}/")), reverse=True):
            subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-LOG_TAIL_LINES:])
