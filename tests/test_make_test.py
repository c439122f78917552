"""`make test` itself: its `-n auto` starts a worker on every CPU the machine gives it, whatever their topology."""

import os

import psutil


def test_auto_starts_a_worker_per_cpu_where_two_cpus_share_one_core(pytestconfig, monkeypatch):
    """psutil counts one physical core for the two hyperthreads of an Intel Xeon cloud machine; the suite must still
    run on both (xdist's own count would start one worker)."""
    cpus = len(os.sched_getaffinity(0))
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: cpus if logical else max(1, cpus // 2))
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    assert pytestconfig.hook.pytest_xdist_auto_num_workers(config=pytestconfig) == cpus
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "3")  # set by hand: it decides, as xdist documents
    assert pytestconfig.hook.pytest_xdist_auto_num_workers(config=pytestconfig) == 3
