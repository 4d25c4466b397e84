"""Where a number came from: machine, library versions, commit, dataset, command, time.

Collected once per run and stored in every record, as asv does, so a record read years later
says what produced it without the code that wrote it.
"""
from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from algorithms import tune_malloc
from harness import __version__

LIBRARIES = ("torch", "faiss-cpu", "faiss-gpu", "faiss", "hnswlib", "numpy", "h5py", "matplotlib", "PyYAML", "tqdm")


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def gpu_info() -> dict[str, Any]:
    """GPU name and CUDA version as torch sees them; nulls on a machine without CUDA."""
    try:
        import torch
    except ImportError:
        return {"gpu_name": None, "cuda": None, "torch": None}
    info: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "gpu_name": None}
    if torch.cuda.is_available():
        info["gpu_name"] = torch.cuda.get_device_name(0)
    return info


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout the harness runs from; (None, None) outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=5, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, bool(status.strip())


def node_facts(gpu: dict[str, Any] | None = None) -> dict[str, Any]:
    """The facts of the machine that measures. On a cluster the records of one
    run come from several machines: each worker reports these, and the driver merges them
    into the provenance of the records it writes, over its own."""
    gpu = gpu_info() if gpu is None else gpu
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu_name": gpu["gpu_name"],
        "allocator": tune_malloc(),
    }


def collect(threads: int, dataset_path: str | None = None, dataset_sha256: str | None = None) -> dict[str, Any]:
    """The provenance block stored in every record of one run."""
    commit, dirty = git_state()
    gpu = gpu_info()
    node = node_facts(gpu)
    return {
        "hostname": node["hostname"],
        "platform": node["platform"],
        "python": sys.version.split()[0],
        "cpu_model": node["cpu_model"],
        "cpu_count": node["cpu_count"],
        "allocator": node["allocator"],
        **gpu,
        "libraries": library_versions(),
        "threads": threads,
        "git_commit": commit,
        "git_dirty": dirty,
        "dataset_path": dataset_path,
        "dataset_sha256": dataset_sha256,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else None,
        "started": now_iso(),
        "harness_version": __version__,
    }


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU, asked through NVML so that CUDA is not initialised here."""
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    import torch

    return bool(torch.cuda.is_available())
