"""A broken plugin is refused when it registers, before anything is built or recorded.

A potential is evaluated once when it registers (algorithms/potential/checks.py), a name that
is taken is refused naming both files, and an unknown algorithm's hint mentions --plugins.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from algorithms import registry
from algorithms.base import Adapter, Param, positive
from algorithms.potential import potentials, radial_potential
from harness.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SIFTSMALL = Path(__file__).parent / "data" / "siftsmall-128-euclidean.hdf5"

MISNAMED = '''
import torch

from algorithms.base import Param, positive
from algorithms.potential import radial_potential


@radial_potential("imq", params={"beta": Param(float, 1.0, "width", positive)},
                  sweep={"query": {"beta": [0.5, 1.0], "ascent": ["adam"], "rate": [0.05], "max_iters": [5]}})
def imq(r: torch.Tensor, b: float) -> torch.Tensor:
    """Inverse multiquadric peaks; its argument is not named as its parameter."""
    return 1.0 / torch.sqrt(1.0 + (r / b) ** 2)
'''

TAKES_CAUCHY = '''
import torch

from algorithms.base import Param, positive
from algorithms.potential import radial_potential


@radial_potential("cauchy", params={"gamma": Param(float, 0.5, "width", positive)},
                  sweep={"query": {"gamma": [0.5], "ascent": ["adam"], "rate": [0.05], "max_iters": [5]}})
def my_cauchy(r: torch.Tensor, gamma: float) -> torch.Tensor:
    """A second Cauchy potential under the built-in's name."""
    return 2.0 / (1.0 + (r / gamma) ** 2)
'''

GOOD = '''
import torch

from algorithms.base import Param, positive
from algorithms.potential import radial_potential


@radial_potential("checked_imq", params={"beta": Param(float, 1.0, "width", positive)})
def imq(r: torch.Tensor, beta: float) -> torch.Tensor:
    """Inverse multiquadric peaks 1 / sqrt(1 + (r / beta)^2)."""
    return 1.0 / torch.sqrt(1.0 + (r / beta) ** 2)
'''


def _harness(*argv: str, env_plugins: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GPNN_PLUGINS": env_plugins}
    return subprocess.run([sys.executable, "-m", "harness", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def _record_files(results: Path) -> list[Path]:
    return [p for p in results.rglob("*") if p.suffix in (".json", ".h5")] if results.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize("text, needles", [
    (MISNAMED, ["potential 'imq' (function imq)", "psi(r, beta=...) failed: TypeError",
                "unexpected keyword argument 'beta'", "(its params declare: beta)"]),
    (TAKES_CAUCHY, ["potential 'cauchy' (function my_cauchy) is already registered by",
                    "algorithms/potential/variants/cauchy.py (function cauchy)"]),
], ids=["misnamed-argument", "built-in-name"])
def test_a_broken_plugin_stops_the_run_before_any_build_or_record(tmp_path, text, needles) -> None:
    """Before the check, the misnamed potential's methods failed at run time while their
    `ascent=none` controls succeeded; the plugin named `cauchy` replaced the built-in."""
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(text)
    results = tmp_path / "results"
    algorithm = "potential-imq" if text is MISNAMED else "potential-cauchy"
    done = _harness("--dataset", str(SIFTSMALL), "--algorithms", algorithm, "--plugins", str(plugin),
                    "--queries", "10", "--runs", "1", "--workers", "0", "--no-plots", "--no-progress",
                    "--results-dir", str(results))
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert errors[0].startswith(f"error: plugin {plugin.resolve()}: "), errors[0]
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert "siftsmall" not in done.stdout, "nothing is planned or built: " + done.stdout
    assert _record_files(results) == []


@pytest.mark.slow
def test_list_shows_a_good_plugin_and_refuses_a_broken_one(tmp_path) -> None:
    good, broken = tmp_path / "good.py", tmp_path / "broken.py"
    good.write_text(GOOD)
    broken.write_text(TAKES_CAUCHY)
    listed = _harness("list", "--plugins", str(good))
    assert listed.returncode == 0, listed.stderr
    assert "potential-checked-imq" in listed.stdout and "beta" in listed.stdout
    unavailable = [line for line in listed.stdout.splitlines() if line.startswith("unavailable:")]
    assert "potential-cauchy" in listed.stdout and not any("potential" in line for line in unavailable), unavailable
    refused = _harness("list", env_plugins=str(broken))
    assert refused.returncode == 2 and "already registered by algorithms/potential/variants/cauchy.py" in refused.stderr
    assert "variants" not in "".join(line for line in (refused.stdout + refused.stderr).splitlines()
                                     if line.startswith("unavailable:"))  # the built-in is not the one blamed


@pytest.fixture
def scratch_registries(monkeypatch):
    """Registrations made in a test vanish afterwards (both the potential and algorithm tables)."""
    registry.discover()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(potentials, "_POTENTIALS", dict(potentials._POTENTIALS))


WIDTH = {"width": Param(float, 0.5, "peak width", positive)}


def _refusal(name: str, psi, **options) -> str:
    with pytest.raises(ConfigError) as caught:
        radial_potential(name, params=WIDTH, **options)(psi)
    assert name not in potentials.potential_names()
    assert f"potential-{name}" not in registry.all_algorithms()
    return caught.value.message


def nan_psi(r: torch.Tensor, width: float) -> torch.Tensor:
    return torch.log(1.0 - r / width)  # NaN beyond r = width


def detached_psi(r: torch.Tensor, width: float) -> torch.Tensor:
    return torch.exp(-r.detach() / width)


def numpy_psi(r: torch.Tensor, width: float) -> torch.Tensor:
    return torch.from_numpy(np.exp(-r.detach().numpy() / width))


def summed_psi(r: torch.Tensor, width: float) -> torch.Tensor:
    return torch.exp(-r / width).sum()


def float64_psi(r: torch.Tensor, width: float) -> torch.Tensor:
    return torch.exp(-r.double() / width)


def nan_slope_psi(r: torch.Tensor, width: float) -> torch.Tensor:
    return torch.exp(-r / width) * torch.sqrt(r - r)  # value 0, slope NaN (0 / 0)


@pytest.mark.parametrize("psi, needles", [
    (nan_psi, ["(function nan_psi)", "psi(r, width=...) returned NaN"]),
    (detached_psi, ["(function detached_psi)", "psi(r, width=...) is not differentiable by autograd"]),
    (numpy_psi, ["(function numpy_psi)", "psi(r, width=...) is not differentiable by autograd"]),
    (summed_psi, ["psi(r, width=...) returned shape ()", "expected (4,)"]),
    (float64_psi, ["psi(r, width=...) returned torch.float64 for torch.float32 input"]),
    (nan_slope_psi, ["the gradient of psi(r, width=...) returned NaN"]),
], ids=lambda value: getattr(value, "__name__", ""))
def test_a_potential_that_cannot_run_is_refused_with_its_reason(scratch_registries, psi, needles) -> None:
    message = _refusal("test_bad", psi)
    assert message.startswith(f"plugin {Path(__file__).resolve()}: potential 'test_bad'"), message
    for needle in needles:
        assert needle in message, message


def test_an_analytic_slope_is_checked_too(scratch_registries) -> None:
    def laplace(r: torch.Tensor, width: float) -> torch.Tensor:
        return torch.exp(-r / width)

    def bad_slope(r: torch.Tensor, width: float) -> torch.Tensor:
        return torch.full_like(r, float("inf"))

    message = _refusal("test_bad_slope", laplace, dpsi=bad_slope)
    assert "dpsi(r, width=...) returned inf" in message, message


def test_every_built_in_potential_passes_the_check_cheaply() -> None:
    """They are registered through the same check; it evaluates a few numbers, not data."""
    import time

    registry.discover()
    assert {"potential_1", "potential_2", "naive", "gaussian", "cauchy"} <= set(potentials.potential_names())
    for name in potentials.potential_names():
        started = time.perf_counter()
        potentials.check_potential(potentials.get_potential(name))
        assert time.perf_counter() - started < 0.5, name


def test_a_taken_potential_name_is_refused_and_the_built_in_kept(scratch_registries) -> None:
    builtin = potentials.get_potential("cauchy")

    def cauchy(r: torch.Tensor, width: float) -> torch.Tensor:
        return 1.0 / (1.0 + (r / width) ** 2)

    with pytest.raises(ConfigError) as caught:
        radial_potential("cauchy", params=WIDTH)(cauchy)
    message = caught.value.message
    assert f"plugin {Path(__file__).resolve()}: potential 'cauchy'" in message, message
    assert "already registered by algorithms/potential/variants/cauchy.py (function cauchy)" in message, message
    assert potentials.get_potential("cauchy") is builtin


def test_the_same_definition_registered_again_is_accepted(scratch_registries) -> None:
    """A module reloaded (or one file imported under two module names) registers the same
    definition again: that replaces the entry rather than clashing with it."""

    def laplace(r: torch.Tensor, width: float) -> torch.Tensor:
        return torch.exp(-r / width)

    first = radial_potential("test_again", params=WIDTH)(laplace)
    second = radial_potential("test_again", params=WIDTH)(laplace)
    assert potentials.get_potential("test_again") is second is not first
    assert registry.get("potential-test-again").adapter.potential_impl is second


def test_a_potential_whose_algorithm_name_is_taken_is_not_left_half_registered(scratch_registries) -> None:
    def other(r: torch.Tensor, width: float) -> torch.Tensor:
        return torch.exp(-r / width)

    with pytest.raises(ConfigError, match="algorithm name 'potential-cauchy'.*already registered by algorithms/"):
        radial_potential("potential_cauchy", params=WIDTH)(other)
    assert "potential_cauchy" not in potentials.potential_names()


class _Exact(Adapter):
    """A second adapter under a built-in algorithm name."""


def test_a_taken_algorithm_name_is_refused_naming_both_files(scratch_registries) -> None:
    with pytest.raises(ConfigError) as caught:
        registry.add("hnswlib", _Exact)
    message = caught.value.message
    assert f"plugin {Path(__file__).resolve()}: algorithm name 'hnswlib' (class _Exact)" in message, message
    assert "already registered by algorithms/hnswlib_index.py" in message, message


@pytest.mark.parametrize("name, close", [("potential-imq", "did you mean potential-"), ("imq", "python -m harness list")])
def test_an_unknown_algorithm_hints_at_plugins(name, close) -> None:
    with pytest.raises(ConfigError) as caught:
        registry.get(name)
    assert close in caught.value.hint
    assert "an algorithm defined in a plugin needs --plugins file (or $gpnn_plugins)" in caught.value.hint.lower()


def test_a_coordinate_potential_is_checked_too(scratch_registries) -> None:
    from algorithms.potential import coordinate_potential

    def per_coordinate(diff: torch.Tensor, width: float) -> torch.Tensor:
        return torch.exp(-diff.abs() / width)  # one value per coordinate, not per point

    with pytest.raises(ConfigError) as caught:
        coordinate_potential("test_bad_pairs", params=WIDTH)(per_coordinate)
    message = caught.value.message
    assert "per_coordinate): contributions(diff, width=...) returned shape (2, 3, 4), expected (2, 3)" in message, message
    assert "test_bad_pairs" not in potentials.potential_names()
