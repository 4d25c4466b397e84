"""A new potential is one small definition: registered by name, it becomes a sweepable algorithm."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from algorithms import registry
from algorithms.base import Param, positive
from algorithms.potential import coordinate_potential, potentials, radial_potential


@pytest.fixture
def scratch_registries(monkeypatch):
    """Registrations made in a test vanish afterwards (both the potential and algorithm tables)."""
    registry.discover()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(potentials, "_POTENTIALS", dict(potentials._POTENTIALS))


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    X = (rng.standard_normal((50, 6)) * 10).astype(np.float32)
    owners = rng.integers(0, 50, 20)
    return X, (X[owners] + 0.2 * rng.standard_normal((20, 6))).astype(np.float32), owners


def test_new_radial_variant_runs_through_the_adapter(scratch_registries) -> None:
    @radial_potential(
        "test_laplace",
        params={"width": Param(float, 0.2, "peak width, scale units", positive)},
        sweep={"query": {"width": [0.1, 0.2], "ascent": ["adam"], "rate": [0.01]}},
    )
    def laplace(r: torch.Tensor, width: float) -> torch.Tensor:
        """Laplace peaks exp(-r / width)."""
        return torch.exp(-r / width)

    spec = registry.get("potential-test-laplace")
    assert spec.fixed == {"potential": "test_laplace"}
    assert spec.sweep["query"]["width"] == [0.1, 0.2]
    assert "width" in spec.adapter.query_params
    X, Q, owners = _data()
    adapter = spec.make()
    adapter.fit(X)
    adapter.set_query_params(width=0.1, ascent="adam", rate=0.01, max_iters=200)
    ids, _ = adapter.search(Q, 1)
    assert (ids[:, 0] == owners).all()
    assert adapter.stats().iterations.max() <= 200
    # the new potential's gradient drives the climb: every landing ends within a third of the
    # query's distance of its point (the worst measured: 0.22 of it; adam circles a cone's tip),
    # where the climb-less control stays at the query (the snap alone finds these points too)
    start = np.linalg.norm(Q - X[owners], axis=1)
    assert (np.linalg.norm(adapter.last_positions - X[owners], axis=1) < start / 3).all()
    adapter.set_query_params(width=0.1, ascent="none")
    ids, _ = adapter.search(Q, 1)
    assert (ids[:, 0] == owners).all()
    np.testing.assert_allclose(np.linalg.norm(adapter.last_positions - X[owners], axis=1), start, rtol=1e-4)


@pytest.mark.slow
def test_new_coordinate_variant_gets_a_default_sweep(scratch_registries) -> None:
    @coordinate_potential("test_pairs_l1", params={"c": Param(float, 1e4, "base", positive)})
    def pairs_l1(diff: torch.Tensor, c: float) -> torch.Tensor:
        """exp-L1 peaks on coordinate pairs (0,1), (2,3), ..."""
        a = diff.abs()
        return torch.exp(-float(np.log(c)) * (a[..., 0::2] + a[..., 1::2])).sum(-1)

    spec = registry.get("potential-test-pairs-l1")
    assert spec.sweep is not None and "query" in spec.sweep
    X, Q, owners = _data()
    adapter = spec.make(dtype="float64")
    adapter.fit(X)
    adapter.set_query_params(ascent="adam", rate=0.01, max_iters=100, memory_mb=0.01)
    ids, _ = adapter.search(Q, 1)
    assert (ids[:, 0] == owners).mean() >= 0.9


def test_example_variant_file_is_discovered() -> None:
    assert "potential-cauchy" in registry.all_algorithms()
    assert not any("potential" in name for name in registry.import_problems())


VARIANT_FILE = '''
import torch

from algorithms.base import Param, positive
from algorithms.potential import radial_potential


@radial_potential(
    "plugin_laplace",
    params={"width": Param(float, 0.2, "peak width, scale units", positive)},
    sweep={"query": {"width": [0.1, 0.3], "ascent": ["adam"], "rate": [0.02], "max_iters": [60]}},
)
def laplace(r: torch.Tensor, width: float) -> torch.Tensor:
    """Laplace peaks exp(-r / width)."""
    return torch.exp(-r / width)
'''


@pytest.mark.slow
def test_a_variant_in_one_file_is_listed_and_swept_by_the_cli(tmp_path, make_tiny_dataset, capsys, monkeypatch) -> None:
    """The README's promise: one small file, no edit elsewhere, then `list` and a sweep."""
    from harness import records
    from harness.cli import main

    plugin = tmp_path / "my_variant.py"
    plugin.write_text(VARIANT_FILE)
    dataset = make_tiny_dataset(n_train=300, n_test=20)
    dirs = ["--results-dir", str(tmp_path / "results"), "--plots-dir", str(tmp_path / "plots")]
    monkeypatch.setenv("GPNN_PLUGINS", str(plugin))
    assert main(["list", *dirs]) == 0
    listed = capsys.readouterr().out
    assert "potential-plugin-laplace" in listed and "width" in listed
    code = main(["--dataset", str(dataset), "--algorithms", "potential-plugin-laplace", "--plugins", str(plugin),
                 "--runs", "1", "--no-plots", "--no-progress", *dirs])
    assert code == 0, capsys.readouterr().err
    found = records.load_records(tmp_path / "results", dataset.stem)
    methods = [r for r in found if r["role"] == "method"]
    controls = [r for r in found if r["role"] == "control"]
    assert sorted(r["query_params"]["width"] for r in methods) == [0.1, 0.3]
    assert all(r["status"] == "ok" and r["metrics"]["iterations_mean"] > 0 for r in methods)
    # every configuration ran beside its control: the same width, no climb
    assert sorted(r["query_params"]["width"] for r in controls) == [0.1, 0.3]
    assert all(r["query_params"]["ascent"] == "none" and r["metrics"]["iterations_mean"] == 0 for r in controls)
    assert all(r["control_query_params"] in [c["query_params"] for c in controls] for r in methods)
