"""The C allocator setting: applied in every measuring process, recorded, and able to be turned off."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # fresh interpreters in subprocesses

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="the allocator setting applies to glibc only; elsewhere it reports 'default (not glibc)'",
)

# one potential_2 step on the note's data, repeated: eager torch with block-sized temporaries
_PROBE = """
import json, resource, torch
from algorithms import tune_malloc
from algorithms.potential import Field, get_potential
from algorithms.potential.note_reference import C, EPS, note_data

setting = tune_malloc()  # what a measuring process does first
torch.set_num_threads(1)
X, Q = note_data(S=1000, Q=20)
field, potential = Field.of(X), get_potential("potential_2")
hp = {"c": C, "eps": EPS, "clamp": 16.0}
for _ in range(2):  # warm-up: one-time faults (lazily loaded code, first-call caches) are not per step
    potential.evaluate(Q, field, hp)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    potential.evaluate(Q, field, hp)
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
print(json.dumps({"setting": setting, "faults_per_step": faults}))
"""


def _probe(**env: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@glibc_only
def test_eager_potential_steps_stop_page_faulting_their_temporaries() -> None:
    tuned = _probe()
    assert tuned["setting"].startswith("glibc mallopt mmap_threshold=")
    # glibc's defaults fault ~2e4 pages per step here (measured); the setting keeps them in the heap
    assert tuned["faults_per_step"] < 200, tuned


@glibc_only
def test_the_setting_can_be_turned_off_and_says_so() -> None:
    assert _probe(GPNN_MALLOC="default")["setting"] == "default (GPNN_MALLOC=default)"


def test_provenance_names_the_allocator_setting() -> None:
    from algorithms import tune_malloc
    from harness.run import provenance

    assert provenance.collect(threads=1)["allocator"] == tune_malloc()
    assert provenance.node_facts()["allocator"] == tune_malloc()
