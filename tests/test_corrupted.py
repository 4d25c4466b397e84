"""The corrupted-pattern workload: stored points, noisy copies as queries, each query's source kept."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import write_tiny_dataset
from harness.data.format import validate_file
from harness.data.generate import corrupted, generate, median_nn_spacing
from harness.data.registry import DatasetInfo, resolve
from harness.errors import DatasetError


def recipe(base: Path, sigma: float, n_queries: int = 30) -> DatasetInfo:
    return DatasetInfo("corrupted-tiny", "euclidean", 8, 300, n_queries, generated=True,
                       generator={"kind": "corrupted", "sigma": sigma, "n_queries": n_queries, "base": str(base)})


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "base-8-euclidean.hdf5", n_train=300, n_test=5, dim=8)


def test_corrupted_file_keeps_the_source_and_exact_ground_truth(tmp_path: Path, base: Path) -> None:
    path = generate(recipe(base, sigma=0.2), tmp_path / "corrupted-tiny.hdf5", progress=False)
    validate_file(path)
    with h5py.File(path) as f, h5py.File(base) as b:
        train, test, neighbors, distances = (f[key][:] for key in ("train", "test", "neighbors", "distances"))
        source, sigma, spacing = f["source"][:], float(f.attrs["corruption_sigma"]), float(f.attrs["nn_spacing"])
        assert np.array_equal(train, b["train"][:])  # the stored points are the base's, untouched
    assert source.shape == (30,) and source.dtype.kind == "i" and len(set(source)) == 30
    assert sigma == 0.2 and spacing == pytest.approx(median_nn_spacing(train))
    noise = np.linalg.norm(test.astype(np.float64) - train[source], axis=1)
    assert 0.5 * sigma * spacing < noise.mean() < 1.5 * sigma * spacing  # noise of length about sigma x spacing
    d = np.sqrt(((test[:, None, :].astype(np.float64) - train[None, :, :]) ** 2).sum(-1))  # independent brute force
    order = np.argsort(d, axis=1, kind="stable")[:, :100]
    assert np.array_equal(neighbors, order)
    assert np.allclose(distances, np.take_along_axis(d, order, 1), rtol=1e-9)
    assert np.array_equal(neighbors[:, 0], source)  # small noise: the exact NN is the source pattern


def test_large_noise_separates_the_exact_nn_from_the_source(tmp_path: Path, base: Path) -> None:
    path = generate(recipe(base, sigma=3.0), tmp_path / "corrupted-tiny.hdf5", progress=False)
    with h5py.File(path) as f:
        assert (f["neighbors"][:, 0] != f["source"][:]).any()


def test_corrupted_needs_exactly_one_euclidean_base(tmp_path: Path, base: Path) -> None:
    with pytest.raises(DatasetError, match="exactly one base"):
        corrupted(0.5)
    angular = write_tiny_dataset(tmp_path / "base-angular.hdf5", distance="angular")
    with pytest.raises(DatasetError, match="attribute 'distance'"):
        corrupted(0.5, n_queries=5, base=str(angular))
    with pytest.raises(DatasetError, match="n_queries"):
        corrupted(0.5, n_queries=301, base=str(base))


def test_registry_entries_are_generated_from_a_generator_not_a_file() -> None:
    for sigma in ("0.5", "1.0", "2.0"):
        info = resolve(f"corrupted-xs-20-s{sigma}")
        assert info.generated and info.distance == "euclidean" and info.generator is not None
        assert info.generator["kind"] == "corrupted" and info.generator["sigma"] == float(sigma)
        assert "base" not in info.generator and info.generator["base_generator"]["kind"] == "blobs"


def test_the_datasets_command_makes_one_corrupted_dataset_per_sigma_from_a_file(tmp_path: Path, base: Path, capsys) -> None:
    from harness.cli import main

    argv = ["datasets", "corrupt", "--base", str(base), "--sigmas", "0.5,2", "--queries", "20", "--data-dir", str(tmp_path),
            "--no-progress"]
    assert main(argv) == 0
    paths = [Path(line) for line in capsys.readouterr().out.split()]
    assert [p.name for p in paths] == [f"corrupted-{base.stem.removesuffix('-euclidean')}-s{s}-euclidean.hdf5" for s in ("0.5", "2")]
    with h5py.File(base) as handle:
        stored = handle["train"][()]
    for path, sigma in zip(paths, (0.5, 2.0)):
        validate_file(path)
        with h5py.File(path) as handle:
            assert handle.attrs["corruption_sigma"] == sigma and len(handle["source"]) == 20
            np.testing.assert_array_equal(handle["train"][()], stored)  # the stored patterns are the base's own
    assert main(["datasets", "corrupt", "--base", str(tmp_path / "missing.hdf5"), "--data-dir", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
