"""Inner-product (`dot`) search end to end: distances, ground truth, files, adapters, the plan."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from algorithms import registry
from harness.cli import main
from harness.data.distances import exact_knn, row_distances
from harness.data.format import validate_file
from harness.data.generate import generate, write_ann_hdf5
from harness.data.groundtruth import check_ground_truth
from harness.data.loader import open_dataset
from harness.data.registry import resolve
from harness.errors import ConfigError, DatasetError, ParameterError
from harness.plan import sweeps


def varied_norms(n: int, dim: int, seed: int) -> np.ndarray:
    """Gaussian directions with log-normal norms: inner products here are not cosines."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, dim)) * np.exp(rng.normal(size=(n, 1)))).astype(np.float32)


def numpy_mips(train: np.ndarray, test: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Independent reference: the k largest inner products, ties to the smaller id."""
    ip = test.astype(np.float64) @ train.astype(np.float64).T
    order = np.lexsort((np.broadcast_to(np.arange(train.shape[0]), ip.shape), -ip), axis=1)[:, :k]
    return order, np.take_along_axis(ip, order, 1)


@pytest.fixture(scope="module")
def dot_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    info = resolve("random-xs-20-dot")
    return generate(info, tmp_path_factory.mktemp("dot") / f"{info.name}.hdf5", progress=False)


# --- the distance ---------------------------------------------------------------------------


def test_dot_distance_is_the_negative_inner_product_and_ranks_largest_first() -> None:
    train, test = varied_norms(300, 6, 0), varied_norms(7, 6, 1)
    train[5] = train[3] = 10 * test[0]  # equal, and the largest, inner products with query 0
    ids, dists = exact_knn("dot", train, test, 20)
    ref_ids, ref_ip = numpy_mips(train, test, 20)
    assert np.array_equal(ids, ref_ids)
    assert np.allclose(dists, -ref_ip, rtol=1e-12)
    assert np.all(np.diff(dists, axis=1) >= 0)  # ascending, as every distance of the harness
    assert np.allclose(row_distances("dot", test, train, ids), -ref_ip)
    assert list(ids[0, :2]) == [3, 5]  # the tie goes to the smaller id


def test_recall_rules_hold_for_negative_distances() -> None:
    from harness.measure.metrics import quality

    train, test = varied_norms(500, 6, 4), varied_norms(20, 6, 5)
    ids, dists = exact_knn("dot", train, test, 11)
    exact = quality(ids[:, :10], dists[:, :10], ids, dists, 10)
    assert exact["recall_at_1"] == exact["recall_at_k"] == 1.0
    assert exact["recall_at_k_eps001"] == exact["recall_at_k_eps01"] == 1.0  # the exact answer is within any epsilon
    shifted = quality(ids[:, 1:], dists[:, 1:], ids, dists, 10)  # each answer one rank too far
    assert shifted["recall_at_1"] == 0.0 and shifted["recall_at_k"] == pytest.approx(0.9)


# --- the generated dataset ------------------------------------------------------------------


def test_random_xs_20_dot_is_stored_raw_with_inner_product_ground_truth(dot_path: Path) -> None:
    validate_file(dot_path)
    with h5py.File(dot_path) as f:
        assert f.attrs["distance"] == "dot"
        train, test, neighbors, distances = (f[key][:] for key in ("train", "test", "neighbors", "distances"))
    assert train.shape == (9000, 20) and test.shape == (1000, 20) and neighbors.shape == (1000, 100)
    norms = np.linalg.norm(train, axis=1)
    assert np.percentile(norms, 95) / np.percentile(norms, 5) > 3  # unnormalised, norms spread
    ref_ids, ref_ip = numpy_mips(train, test, 100)
    assert np.array_equal(neighbors, ref_ids)
    assert np.allclose(distances, -ref_ip, rtol=1e-9)
    unit = train / norms[:, None]
    by_angle = (test @ unit.T).argmax(1)
    assert (by_angle != neighbors[:, 0]).mean() > 0.5  # not angular in disguise


def test_dot_dataset_loads_unnormalised_and_passes_the_spot_check(dot_path: Path) -> None:
    ds = open_dataset(str(dot_path))
    with h5py.File(dot_path) as f:
        assert np.array_equal(ds.train, f["train"][:]) and np.array_equal(ds.test, f["test"][:])
    assert ds.distance == "dot" and ds.ground_truth.startswith("spot-checked")


def test_spot_check_catches_dot_ground_truth_of_the_wrong_sign(dot_path: Path) -> None:
    ds = open_dataset(str(dot_path), trust_ground_truth=True)
    with pytest.raises(DatasetError, match="ascend|distance to the point"):
        check_ground_truth(dot_path, "dot", ds.train, ds.test, ds.neighbors, -ds.distances)


@pytest.mark.parametrize("spelling", ["ip", "inner_product", "cosine"])
def test_a_wrongly_spelt_distance_is_refused_naming_file_and_field(tmp_path: Path, spelling: str) -> None:
    train, test = varied_norms(50, 4, 0), varied_norms(3, 4, 1)
    ids, dists = exact_knn("dot", train, test, 10)
    path = tmp_path / "mine-dot.hdf5"
    write_ann_hdf5(path, train, test, ids, dists, spelling)
    with pytest.raises(DatasetError) as caught:
        open_dataset(str(path))
    assert str(path) in caught.value.message and "attribute 'distance'" in caught.value.message
    assert repr(spelling) in caught.value.message
    if spelling != "cosine":
        assert "'dot'" in (caught.value.hint or "")


def test_a_registered_dot_file_with_another_distance_attribute_is_refused(tmp_path: Path, dot_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with h5py.File(dot_path) as f:
        arrays = {key: f[key][:] for key in ("train", "test", "neighbors", "distances")}
    target = data_dir / "random-xs-20-dot.hdf5"
    write_ann_hdf5(target, arrays["train"], arrays["test"], arrays["neighbors"], arrays["distances"], "euclidean")
    with pytest.raises(DatasetError) as caught:
        open_dataset("random-xs-20-dot", data_dir, download=False, trust_ground_truth=True)
    message = caught.value.message
    assert str(target) in message and "attribute 'distance'" in message and "'dot'" in message and "'euclidean'" in message


def test_lastfm_is_registered_as_ann_benchmarks_stores_it() -> None:
    info = resolve("lastfm-64-dot")
    assert (info.distance, info.dimension, info.n_train, info.n_test) == ("angular", 65, 292385, 50000)
    assert info.url is not None and info.url.endswith("/lastfm-64-dot.hdf5")


# --- the adapters ----------------------------------------------------------------------------


ON_DOT = [
    ("bruteforce", {}, {}, 1.0),
    ("faiss-flat", {}, {}, 1.0),
    ("faiss-ivf", {"nlist": 16}, {"nprobe": 16}, 1.0),  # every list probed: exact
    ("hnswlib", {"M": 16, "ef_construction": 100}, {"ef": 100}, 0.95),
    ("potential-gaussian", {}, {"ascent": "meanshift", "beta": 30.0, "m": 50}, 0.95),
    ("potential-gaussian", {}, {"ascent": "none", "m": 50}, 1.0),  # the control: exact top-m by q.x at the query
]


@pytest.mark.parametrize("name, build, query, floor", ON_DOT)
def test_adapters_serve_dot_by_inner_product(name: str, build: dict, query: dict, floor: float) -> None:
    train, test = varied_norms(2000, 12, 2), varied_norms(40, 12, 3)
    true_ids, true_ip = numpy_mips(train, test, 10)
    adapter = registry.get(name).make(metric="dot", **build)
    adapter.fit(train)
    adapter.set_query_params(**query)
    ids, dists = adapter.search(test, 10)
    assert (ids[:, 0] == true_ids[:, 0]).mean() >= floor
    # what the adapter returns is the harness's dot distance, -q.x, nearest first
    assert np.allclose(dists, row_distances("dot", test, train, ids), rtol=1e-4, atol=1e-3)
    if floor == 1.0:
        assert np.array_equal(ids, true_ids)


def test_an_adapter_refuses_a_distance_it_does_not_serve() -> None:
    with pytest.raises(ParameterError, match="'dot' distance"):
        registry.get("faiss-hnsw").make(metric="dot")
    assert "dot" not in registry.get("potential-1").adapter.metrics  # only the Gaussian has the attention form
    assert "dot" in registry.get("potential-gaussian").adapter.metrics


# --- the plan ----------------------------------------------------------------------------------


def _configs(names: list[str]) -> list[sweeps.BuildConfig]:
    return sweeps.expand(sweeps.default_entries(names), 9000, "random-xs-20-dot")


def test_plan_refuses_a_named_algorithm_that_cannot_serve_dot() -> None:
    configs = _configs(["bruteforce", "faiss-hnsw"])
    with pytest.raises(ConfigError) as caught:
        sweeps.check_configs(configs, 10, 9000, 20, drop_invalid=True, distance="dot", named=True)
    assert "faiss-hnsw" in caught.value.message and "'dot'" in caught.value.message
    with pytest.raises(ConfigError):  # a sweep the user wrote: refused too
        sweeps.check_configs(configs, 10, 9000, 20, drop_invalid=False, distance="dot")


def test_default_sweep_leaves_out_what_cannot_serve_dot_with_a_note() -> None:
    configs = _configs(["bruteforce", "faiss-hnsw", "potential-1"])
    kept, notes = sweeps.check_configs(configs, 10, 9000, 20, drop_invalid=True, distance="dot")
    assert {c.spec.name for c in kept} == {"bruteforce"}
    assert any("faiss-hnsw" in n and "'dot'" in n for n in notes) and any("potential-1" in n for n in notes)
    kept, _ = sweeps.check_configs(configs, 10, 9000, 20, drop_invalid=True, distance="euclidean")
    assert {c.spec.name for c in kept} == {"bruteforce", "faiss-hnsw", "potential-1"}


# --- the command line ----------------------------------------------------------------------------


SMALL_SWEEP = """
bruteforce: {}
faiss-flat: {}
faiss-ivf:
  build: {nlist: [64]}
  query: {nprobe: [8]}
hnswlib:
  build: {M: [16]}
  query: {ef: [50]}
potential-gaussian:
  query: {ascent: [meanshift], beta: [30.0], m: [100]}
"""


@pytest.mark.slow
def test_cli_runs_every_dot_algorithm_on_random_xs_20_dot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SMALL_SWEEP)
    dirs = ["--results-dir", str(tmp_path / "results"), "--data-dir", str(tmp_path / "data")]
    code = main(["--dataset", "random-xs-20-dot", "--queries", "100", "--sweep", str(sweep), "--runs", "1",
                 "--no-plots", "--no-progress", *dirs])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["results", "--dataset", "random-xs-20-dot", "--format", "csv", *dirs]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    by = {(r["algorithm"], json.loads(r["query_params"]).get("ascent") == "none"): r for r in rows if r["status"] == "ok"}
    assert {name for name, _ in by} == {"bruteforce", "faiss-flat", "faiss-ivf", "hnswlib", "potential-gaussian"}
    assert ("potential-gaussian", True) in by  # the control ran beside the climb
    assert float(by[("bruteforce", False)]["recall_at_1"]) == 1.0
    assert float(by[("faiss-flat", False)]["recall_at_1"]) == 1.0


@pytest.mark.slow
def test_cli_refuses_a_named_algorithm_on_dot_before_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dirs = ["--results-dir", str(tmp_path / "results"), "--data-dir", str(tmp_path / "data")]
    code = main(["--dataset", "random-xs-20-dot", "--algorithms", "bruteforce,faiss-hnsw", "--no-progress", *dirs])
    err = capsys.readouterr().err
    assert code == 2 and "faiss-hnsw" in err and "'dot'" in err and "Traceback" not in err
    assert not (tmp_path / "results" / "random-xs-20-dot").exists()
