"""Control groups against a fake hierarchy: folders and files in tmp_path that stand for cgroupfs, and
a mount table that points at them. (The real ones are exercised by tests/e2e/test_confinement.py, on
whatever version this host has; this covers both.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from leadersboard.runner.cgroups import CgroupError, CgroupTree, ResourceLimits

LIMITS = ResourceLimits(memory_bytes=1 << 30, cpus=2, pids=128)


def mountinfo(tmp_path: Path, *mounts: tuple[str, str, str]) -> Path:
    """A /proc/self/mountinfo listing (mount point, type, super options)."""
    lines = [f"{n} 1 0:{n} / {point} rw,nosuid,nodev - {fstype} cgroup {options}"
             for n, (point, fstype, options) in enumerate(mounts, start=30)]
    path = tmp_path / "mountinfo"
    path.write_text("\n".join(lines) + "\n")
    return path


def v2_root(tmp_path: Path, controllers: str = "cpuset cpu io memory hugetlb pids") -> Path:
    root = tmp_path / "unified"
    root.mkdir()
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def test_v2_hands_the_controllers_down_and_limits_a_job(tmp_path: Path) -> None:
    root = v2_root(tmp_path)
    top = root / "leadersboard"
    top.mkdir()
    (top / "cgroup.subtree_control").write_text("")
    tree = CgroupTree.find("inst", mountinfo(tmp_path, (str(root), "cgroup2", "rw")))
    assert tree.version == 2 and tree.describe() == "cgroup v2"
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (top / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"

    job = tree.job("abc")
    folder = top / "inst-abc"
    assert job.folders == (folder,) and job.procs_files == [str(folder / "cgroup.procs")]
    job.create(LIMITS)
    assert (folder / "memory.max").read_text() == str(1 << 30)
    assert not (folder / "memory.swap.max").exists()  # written only where the kernel offers it
    assert (folder / "cpu.max").read_text() == "200000 100000"
    assert (folder / "pids.max").read_text() == "128"
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\n")
    assert job.oom_kills() == 1
    assert tree.job_ids() == {"abc"}
    assert CgroupTree(2, tree.bases, "other").job_ids() == set()  # another instance's groups are not ours


def test_v1_uses_one_hierarchy_per_controller(tmp_path: Path) -> None:
    folders = {name: tmp_path / name for name in ("memory", "cpu,cpuacct", "pids")}
    for folder in folders.values():
        folder.mkdir()
    info = mountinfo(tmp_path, (str(folders["memory"]), "cgroup", "rw,memory"),
                     (str(folders["cpu,cpuacct"]), "cgroup", "rw,cpu,cpuacct"),
                     (str(folders["pids"]), "cgroup", "rw,pids"),
                     (str(tmp_path / "unified"), "cgroup2", "rw"))  # hybrid: v2 without controllers
    tree = CgroupTree.find("inst", info)
    assert tree.version == 1
    job = tree.job("abc")
    assert set(job.folders) == {folder / "leadersboard" / "inst-abc" for folder in folders.values()}
    job.create(LIMITS)
    memory, cpu = job.controllers["memory"], job.controllers["cpu"]
    assert (memory / "memory.limit_in_bytes").read_text() == str(1 << 30)
    assert (cpu / "cpu.cfs_period_us").read_text() == "100000" and (cpu / "cpu.cfs_quota_us").read_text() == "200000"
    assert (job.controllers["pids"] / "pids.max").read_text() == "128"
    (memory / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    assert job.oom_kills() == 3
    assert job.procs_files == [str(folder / "cgroup.procs") for folder in job.folders]


def test_no_usable_hierarchy_is_said_plainly(tmp_path: Path) -> None:
    root = v2_root(tmp_path, controllers="cpu io")
    info = mountinfo(tmp_path, (str(root), "cgroup2", "rw"), (str(tmp_path / "m"), "cgroup", "rw,memory"))
    with pytest.raises(CgroupError, match="cgroup v2 has cpu of them, cgroup v1 memory"):
        CgroupTree.find("inst", info)


def test_a_group_that_cannot_be_made_is_said_plainly(tmp_path: Path) -> None:
    root = v2_root(tmp_path)
    (root / "cgroup.subtree_control").unlink()  # the kernel refusing: here, a file that is not there
    with pytest.raises(CgroupError, match="cannot make the control groups of jobs"):
        CgroupTree.find("inst", mountinfo(tmp_path, (str(root), "cgroup2", "rw")))


def test_destroying_a_group_that_is_gone_is_fine(tmp_path: Path) -> None:
    root = v2_root(tmp_path)
    (root / "leadersboard").mkdir()
    (root / "leadersboard" / "cgroup.subtree_control").write_text("")
    tree = CgroupTree.find("inst", mountinfo(tmp_path, (str(root), "cgroup2", "rw")))
    job = tree.job("gone")
    job.destroy()
    assert job.pids() == set() and job.oom_kills() == 0
