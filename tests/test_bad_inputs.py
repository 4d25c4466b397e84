"""The catalogue of bad inputs, each met through the command line as a user meets it.

Every case: one clear message naming what was wrong and how to fix it (`error:` + `hint:`),
a non-zero exit (except the interrupted record, which is repaired), no traceback unless
`--debug`, and the records of an earlier run left byte for byte as they were.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_loader import with_value, write_raw

from harness import records
from harness.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny dataset and the results directory of a quick earlier run on it (written once)."""
    from conftest import write_tiny_dataset

    root = tmp_path_factory.mktemp("earlier")
    dataset = write_tiny_dataset(root / "tiny-8-euclidean.hdf5", n_train=200, n_test=10)
    results = root / "results"
    argv = ["--dataset", str(dataset), "--algorithms", "faiss-flat,faiss-ivf", "--sweep", str(_ivf_sweep(root)),
            "--runs", "1", "--workers", "0", "--no-plots", "--no-progress", "--results-dir", str(results)]
    assert main(argv) == 0
    return dataset, results


def _ivf_sweep(root: Path) -> Path:
    path = root / "small.yaml"
    path.write_text("faiss-flat: {}\nfaiss-ivf:\n  build: {nlist: [8]}\n  query: {nprobe: [1, 2]}\n")
    return path


@pytest.fixture
def case(earlier_run, tmp_path):
    """This test's copy of the earlier results, and a check that they come out unchanged."""
    dataset, template = earlier_run
    results = tmp_path / "results"
    shutil.copytree(template, results)
    before = _snapshot(results)
    yield dataset, results
    assert _snapshot(results) == before, "earlier records must stay byte-identical"


def _snapshot(results: Path) -> dict[str, bytes]:
    return {str(p.relative_to(results)): p.read_bytes() for p in sorted(results.rglob("*")) if p.is_file()}


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    """Run the CLI, expect a clean refusal mentioning every needle; returns stderr."""
    code = main([*argv, "--no-plots", "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0, err
    assert "error:" in err and "hint:" in err, err
    assert "Traceback" not in err, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in: {err}"
    return err


def _sweep(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return str(path)


def test_unknown_dataset_name_suggests_close_names(case, capsys):
    _, results = case
    _refused(["--dataset", "sift-12", "--results-dir", str(results)], capsys, "unknown dataset", "sift-128")


def test_unknown_algorithm_suggests_close_names(case, capsys):
    dataset, results = case
    _refused(["--dataset", str(dataset), "--algorithms", "hnswlb", "--results-dir", str(results)], capsys,
             "unknown algorithm 'hnswlb'", "did you mean hnswlib")


def test_malformed_sweep_yaml_names_the_line(case, tmp_path, capsys):
    dataset, results = case
    sweep = _sweep(tmp_path, "faiss-ivf:\n  build: {nlist: [8}\n")
    _refused(["--dataset", str(dataset), "--sweep", sweep, "--results-dir", str(results)], capsys,
             f"sweep file {sweep}, line 2", "not valid YAML")


def test_unknown_parameter_suggests_the_close_name(case, tmp_path, capsys):
    dataset, results = case
    sweep = _sweep(tmp_path, "faiss-ivf:\n  query: {nprob: [1]}\n")
    _refused(["--dataset", str(dataset), "--sweep", sweep, "--results-dir", str(results)], capsys,
             "unknown query parameter 'nprob'", "did you mean nprobe")


INVALID_VALUES = [
    ("nprobe < 1", "faiss-ivf:\n  query: {nprobe: [0]}\n", [], ["'nprobe' = 0 must be >= 1"]),
    ("ef < k", "hnswlib:\n  query: {ef: [8, 5]}\n", [], ["entry 'hnswlib' has no valid combination", "ef = 8 is smaller than k = 10",
                                                         "use ef >= 10"]),
    ("k > points", "faiss-flat: {}\n", ["--count", "500"], ["--count 500 is larger than the number of points", "200"]),
    ("negative beta", "potential-gaussian:\n  query: {beta: [-1.0]}\n", [], ["potential-gaussian", "'beta' = -1.0"]),
]


@pytest.mark.parametrize("text, extra, needles", [c[1:] for c in INVALID_VALUES], ids=[c[0] for c in INVALID_VALUES])
def test_invalid_parameter_values_are_refused_before_any_build(case, tmp_path, capsys, text, extra, needles):
    dataset, results = case
    sweep = _sweep(tmp_path, text)
    _refused(["--dataset", str(dataset), "--sweep", sweep, *extra, "--results-dir", str(results)], capsys, *needles)


def _bad_file(tmp_path: Path, **options: object) -> str:
    return str(write_raw(tmp_path / "bad-4-euclidean.hdf5", **options))


def test_hdf5_file_without_neighbors(case, tmp_path, capsys):
    _, results = case
    path = _bad_file(tmp_path, drop=("neighbors",))
    _refused(["--dataset", path, "--results-dir", str(results)], capsys, path, "'neighbors'", "no 'neighbors'")


def test_train_and_test_of_different_dimensions(case, tmp_path, capsys):
    _, results = case
    path = _bad_file(tmp_path, test=np.ones((3, 5), np.float32))
    _refused(["--dataset", path, "--results-dir", str(results)], capsys, path, "'test'", "4 columns", "shape (3, 5)")


@pytest.mark.parametrize("key, value, shown", [("train", np.nan, "nan"), ("test", np.inf, "inf")])
def test_nan_or_inf_in_the_vectors(case, tmp_path, capsys, key, value, shown):
    _, results = case
    path = _bad_file(tmp_path, **{key: with_value(key, 1, 2, value)})
    _refused(["--dataset", path, "--results-dir", str(results)], capsys, path, f"'{key}'", f"{shown} at row 1, column 2")


def test_empty_train_set(case, tmp_path, capsys):
    _, results = case
    path = _bad_file(tmp_path, train=np.zeros((0, 4), np.float32))
    _refused(["--dataset", path, "--results-dir", str(results)], capsys, path, "'train'", "at least one row")


@pytest.mark.slow
def test_a_file_that_is_not_hdf5_traceback_only_with_debug(case, tmp_path):
    _, results = case
    path = tmp_path / "notes.hdf5"
    path.write_text("this is not HDF5\n" * 100)
    argv = [sys.executable, "-m", "harness", "--dataset", str(path), "--results-dir", str(results), "--no-plots"]
    plain = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 2
    assert f"error: {path} is not a valid HDF5 file" in plain.stderr and "hint:" in plain.stderr
    assert "Traceback" not in plain.stderr
    debug = subprocess.run([*argv, "--debug"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "DatasetError" in debug.stderr


def test_results_directory_that_cannot_be_written(case, tmp_path, capsys):
    dataset, _ = case
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _refused(["--dataset", str(dataset), "--algorithms", "faiss-flat", "--results-dir", str(blocker / "results")],
             capsys, "cannot write into the results directory", "--results-dir")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: --device cuda is valid here")
def test_device_cuda_without_a_gpu(case, capsys):
    dataset, results = case
    _refused(["--dataset", str(dataset), "--device", "cuda", "--results-dir", str(results)], capsys,
             "--device cuda", "no CUDA GPU", "--device cpu")


def test_dataset_with_an_unsupported_distance(case, tmp_path, capsys):
    _, results = case
    path = _bad_file(tmp_path, attrs={"distance": "jaccard"})
    _refused(["--dataset", path, "--results-dir", str(results)], capsys, path, "'jaccard'", "euclidean, angular, dot")


def test_interrupted_earlier_records_are_recomputed_with_a_warning(earlier_run, tmp_path, capsys, caplog):
    dataset, template = earlier_run
    results = tmp_path / "results"
    shutil.copytree(template, results)
    ivf = sorted((results / dataset.stem / "faiss-ivf").glob("*.json"))
    torn, unfinished = ivf
    torn.with_suffix(".h5").write_bytes(torn.with_suffix(".h5").read_bytes()[:100])  # arrays cut short
    leftover = unfinished.parent / f".{unfinished.stem}.x1y2z3.h5.tmp"  # killed before its JSON was written
    leftover.write_bytes(b"half an HDF5 file")
    unfinished.unlink()
    untouched = (results / dataset.stem / "faiss-flat").glob("*")
    before = {p: p.read_bytes() for p in untouched}
    argv = ["--dataset", str(dataset), "--sweep", str(_ivf_sweep(tmp_path)), "--runs", "1", "--no-plots",
            "--no-progress", "--results-dir", str(results)]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    warnings = err + caplog.text
    assert "ignoring incomplete record (it will be recomputed)" in warnings and torn.name in warnings
    assert "does not match its checksum" in warnings
    assert "temporary file left by an interrupted run" in warnings and leftover.name in warnings
    assert "records: 2 written, 1 reused, 0 failed" in out and "Traceback" not in err
    assert not leftover.exists()
    assert all(records.read_record(p)["status"] == "ok" for p in ivf)
    assert before == {p: p.read_bytes() for p in before}


def test_default_sweep_leaves_out_settings_that_cannot_work_for_k(case, capsys):
    """Not a bad input: the built-in sweep was not written for every k, so a setting it holds
    that cannot work (ef=10 with --count 20) is left out with a note rather than refused."""
    dataset, _ = case
    code = main(["--dataset", str(dataset), "--algorithms", "hnswlib", "--count", "20", "--runs", "1", "--workers",
                 "0", "--no-plots", "--no-progress", "--results-dir", str(dataset.parent / "default-sweep")])
    out = capsys.readouterr().out
    assert code == 0 and out.count("note: left out hnswlib {'ef': 10}: hnswlib: ef = 10 is smaller than k = 20") == 1
    assert "records: 10 written" in out


def test_a_users_grid_with_some_invalid_combinations_plans_the_valid_ones(case, tmp_path, capsys):
    """An ann-benchmarks grid crosses every nprobe with every nlist: the combinations that
    cannot run are listed as skipped with the reason, the others are planned."""
    dataset, results = case
    sweep = _sweep(tmp_path, "faiss-ivf:\n  build: {nlist: [2, 8]}\n  query: {nprobe: [1, 4]}\n")
    code = main(["--dataset", str(dataset), "--sweep", sweep, "--plan-only", "--results-dir", str(results)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "note: skipped faiss-ivf nlist=2 nprobe=4: faiss-ivf: nprobe = 4 is larger than nlist = 2" in out
    plan = out[out.index("plan ("):]
    assert "faiss-ivf(nlist=2)" in plan and "faiss-ivf(nlist=8)" in plan


# -- ground truth that does not belong to its file -------------------------------------------
def _with_ground_truth(tmp_path: Path, change: str) -> str:
    """A tiny valid file whose neighbors/distances are then spoiled in one way."""
    from harness.data.distances import exact_knn
    from harness.data.generate import write_ann_hdf5

    rng = np.random.default_rng(3)
    train, test = rng.normal(size=(200, 8)).astype(np.float32), rng.normal(size=(10, 8)).astype(np.float32)
    neighbors, distances = exact_knn("euclidean", train, test, 100)
    if change == "reversed":
        neighbors, distances = neighbors[:, ::-1], distances[:, ::-1]
    elif change == "other-train":
        other = rng.normal(size=(200, 8)).astype(np.float32)
        neighbors, distances = exact_knn("euclidean", other, test, 100)
    elif change == "distances":
        distances = distances * 1.5
    path = tmp_path / f"{change}-8-euclidean.hdf5"
    write_ann_hdf5(path, train, test, np.ascontiguousarray(neighbors), np.ascontiguousarray(distances), "euclidean")
    return str(path)


GROUND_TRUTH_CASES = [
    ("reversed", "`distances` must ascend"),
    ("other-train", "the distance to the point `neighbors` names"),
    ("distances", "the distance to the point `neighbors` names"),
]


@pytest.mark.parametrize("change, needle", GROUND_TRUTH_CASES, ids=[c[0] for c in GROUND_TRUTH_CASES])
def test_ground_truth_that_does_not_belong_to_the_file_is_refused(case, tmp_path, capsys, change, needle):
    _, results = case
    path = _with_ground_truth(tmp_path, change)
    err = _refused(["--dataset", path, "--results-dir", str(results)], capsys, path, "test row", needle, "--trust-ground-truth")
    assert err.count("error:") == 1
    code = main(["--dataset", path, "--results-dir", str(results), "--no-plots", "--no-progress"])
    assert code == 2


def test_trusted_ground_truth_runs_and_says_so_in_the_records(tmp_path, capsys):
    path = _with_ground_truth(tmp_path, "reversed")
    results = tmp_path / "results"
    argv = ["--dataset", path, "--algorithms", "faiss-flat", "--runs", "1", "--workers", "0",
            "--trust-ground-truth", "--no-plots", "--no-progress", "--results-dir", str(results)]
    assert main(argv) == 0
    [record] = records.load_records(results)
    assert record["provenance"]["ground_truth"].startswith("trusted (--trust-ground-truth)")


# -- a file larger than memory ------------------------------------------------------------------
def _huge_file(tmp_path: Path) -> str:
    """ann-benchmarks layout with a 2e9 x 128 float32 train set: chunked and compressed, never
    written, so the file is small while its train set is 954 GiB."""
    import h5py

    path = tmp_path / "huge-128-euclidean.hdf5"
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = "euclidean"
        f.attrs["dimension"] = 128
        f.create_dataset("train", shape=(2_000_000_000, 128), dtype=np.float32, chunks=(1024, 128), compression="gzip")
        f.create_dataset("test", data=np.zeros((10, 128), np.float32))
        f.create_dataset("neighbors", data=np.zeros((10, 100), np.int32))
        f.create_dataset("distances", data=np.zeros((10, 100), np.float32))
    return str(path)


def test_a_file_larger_than_memory_is_refused_from_its_shape_within_seconds(case, tmp_path, capsys):
    import time

    _, results = case
    path = _huge_file(tmp_path)
    assert Path(path).stat().st_size < 10 * 2**20
    started = time.monotonic()
    _refused(["--dataset", path, "--results-dir", str(results)], capsys, path, "'train'", "2000000000 x 128",
             "GiB", "available")
    assert time.monotonic() - started < 10
