"""Provenance carries what a later reader needs; clocks measure what they claim."""
import os
import time

import pytest
import torch

from harness.measure import clocks, threads
from harness.run import provenance


def test_provenance_names_machine_libraries_and_commit():
    info = provenance.collect(2, "/data/x.hdf5", "abc")
    assert info["threads"] == 2 and info["dataset_sha256"] == "abc" and info["dataset_path"] == "/data/x.hdf5"
    assert info["cpu_model"] and info["python"] and info["hostname"]
    assert {"torch", "numpy", "h5py"} <= set(info["libraries"])
    assert "faiss-cpu" in info["libraries"] or "faiss" in info["libraries"]
    commit, _ = provenance.git_state()
    assert info["git_commit"] == commit
    if not torch.cuda.is_available():
        assert info["gpu_name"] is None


def test_timed_separates_wall_and_cpu():
    _, sleeping = clocks.timed(lambda: time.sleep(0.05))
    assert sleeping.wall_s >= 0.045 and sleeping.cpu_s < 0.03 and sleeping.gpu_s is None
    result, busy = clocks.timed(lambda: sum(i * i for i in range(300_000)))
    assert result > 0 and busy.cpu_s > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; torch.cuda.is_available() is False")
def test_gpu_time_measured_with_events():
    x = torch.randn(2048, 2048, device="cuda")
    _, t = clocks.timed(lambda: x @ x, "cuda")
    assert t.gpu_s is not None and 0 < t.gpu_s <= t.wall_s * 1.5


def test_rss_is_measured():
    assert clocks.rss_bytes() > 10_000_000


def test_thread_settings_reach_libraries(monkeypatch):
    previous = torch.get_num_threads()
    for name in threads.ENV_VARS:
        monkeypatch.setenv(name, "")
    try:
        threads.set_threads(1)
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
        import faiss

        assert faiss.omp_get_max_threads() == 1
    finally:
        torch.set_num_threads(previous)


def test_peak_rss_during_a_call_sees_its_transient_memory_and_starts_afresh():
    """A call that holds 200 MB for a moment peaks at least 200 MB above a call that does not,
    measured after it (so the peak of the first is forgotten by the second)."""
    import numpy as np

    def transient() -> int:
        block = np.ones(200 * 2**20 // 8)
        return int(block[-1])

    _, busy = clocks.peak_rss_during(transient)
    _, idle = clocks.peak_rss_during(lambda: None)
    assert busy is not None and idle is not None
    assert busy - idle >= 190 * 2**20 and idle >= clocks.rss_bytes() * 0.9
