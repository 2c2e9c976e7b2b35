"""The pure parts of the process executor's jail: its spec, the mount table, which folders it covers,
how it reports an exit, and the sandbox user `init` picks. The jail itself runs in
tests/e2e/test_confinement.py."""

from __future__ import annotations

from pathlib import Path

from leadersboard.cli.instance import free_sandbox_id
from leadersboard.runner.jail import JailSpec, _exit_code
from leadersboard.runner.jail_fs import outermost
from leadersboard.runner.mounts import MS_NODEV, MS_NOSUID, MS_RDONLY, mount_points


def test_the_spec_travels_as_json() -> None:
    spec = JailSpec(command=["/usr/bin/python3", "main.py"], env={"HOME": "/s/home"}, workdir="/s/work", scratch="/s",
                    uid=10001, gid=10001, parent=42, status_fd=7, hidden=["/srv/lb"], data={"pcb1": "/data/v/pcb1"},
                    cgroup_procs=["/sys/fs/cgroup/leadersboard/i-j/cgroup.procs"])
    assert JailSpec.from_json(spec.to_json()) == spec


def test_the_mount_table_is_read_as_the_kernel_writes_it(tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_text(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n"
        "42 27 0:25 / /mnt/with\\040space ro,nosuid,nodev,relatime - tmpfs none ro,size=4k\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec - cgroup cgroup rw,memory\n")
    root, spaced, memory = mount_points(table)
    assert (root.path, root.fstype, root.flags) == ("/", "ext4", 0)
    assert spaced.path == "/mnt/with space" and spaced.flags == MS_RDONLY | MS_NOSUID | MS_NODEV
    assert memory.fstype == "cgroup" and "memory" in memory.options


def test_this_hosts_mount_table_parses() -> None:
    points = mount_points()
    assert any(point.path == "/" for point in points)


def test_covered_folders_are_the_outermost_ones() -> None:
    assert outermost(["/srv/lb", "/srv/lb/scratch/x", "/root", "/root/.pyenv/versions/3.11", "/srv/lbx/", "/tmp"]) == [
        "/root", "/tmp", "/srv/lb", "/srv/lbx"]


def test_exits_read_as_a_shell_shows_them() -> None:
    assert _exit_code(3 << 8) == 3  # exited 3
    assert _exit_code(9) == 137  # killed by SIGKILL (the memory limit's OOM kill, say)


def test_init_picks_an_id_no_account_uses() -> None:
    taken = {10001, 10002, 10004}
    assert free_sandbox_id(10001, taken.__contains__) == 10003
    assert free_sandbox_id(20000, taken.__contains__) == 20000
    assert free_sandbox_id(0) > 0  # the real accounts: root is one on every host
