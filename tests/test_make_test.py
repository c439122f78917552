"""`make test` itself: its `-n auto` starts a worker on every CPU the machine gives it, whatever their topology, and
no more than a container's CPU quota lets run at once."""

import os

import conftest
import psutil
import pytest


def test_auto_starts_a_worker_per_cpu_where_two_cpus_share_one_core(pytestconfig, monkeypatch):
    """psutil counts one physical core for the two hyperthreads of an Intel Xeon cloud machine; the suite must still
    run on both (xdist's own count would start one worker)."""
    cpus = len(os.sched_getaffinity(0))
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: cpus if logical else max(1, cpus // 2))
    monkeypatch.setattr(conftest, "cpu_quota", lambda: None)
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    assert pytestconfig.hook.pytest_xdist_auto_num_workers(config=pytestconfig) == cpus
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "3")  # set by hand: it decides, as xdist documents
    assert pytestconfig.hook.pytest_xdist_auto_num_workers(config=pytestconfig) == 3


@pytest.mark.parametrize(
    "files, quota",
    [
        ({"cpu.max": "200000 100000\n"}, 2.0),  # cgroup v2, docker --cpus=2
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),  # no cgroup CPU controller to read
        ({"cpu.max": "\n"}, None),  # unreadable contents: no quota known, the CPU count decides
        ({"cpu.max": "100000 0\n"}, None),
    ],
)
def test_the_cpu_quota_is_read_from_cgroup_v2_or_v1(tmp_path, files, quota):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    assert conftest.cpu_quota(tmp_path) == quota


@pytest.mark.parametrize("quota, workers", [(0.5, 1), (1.0, 1), (1.5, 2), (100.0, None)])
def test_auto_starts_no_more_workers_than_the_cpu_quota_allows(pytestconfig, monkeypatch, quota, workers):
    """A container may see every CPU of its host and be given the time of a few: a worker per CPU it sees would
    contend for that time. A part-used CPU still gets its worker; a quota above the CPUs leaves the CPU count."""
    monkeypatch.setattr(conftest, "cpu_quota", lambda: quota)
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    cpus = len(os.sched_getaffinity(0))
    expected = cpus if workers is None else min(workers, cpus)
    assert pytestconfig.hook.pytest_xdist_auto_num_workers(config=pytestconfig) == expected
