"""The command line as a user meets it: exit codes, messages, outputs."""
from __future__ import annotations

import csv
import io
import subprocess
import sys

import pytest
import torch

from harness.cli import main

CSV_COLUMNS = (
    "dataset, algorithm, build_params, query_params, mode, k, recall_at_1, recall_at_1_id, recall_at_k, qps, "
    "build_s, index_bytes, query_wall_s, query_cpu_s, query_gpu_s, iterations_mean, dist_comps_mean, status"
).split(", ")


@pytest.fixture
def dirs(tmp_path):
    return ["--results-dir", str(tmp_path / "results"), "--plots-dir", str(tmp_path / "plots")]


@pytest.mark.slow
def test_run_then_results_csv_and_table(make_tiny_dataset, dirs, capsys):
    path = make_tiny_dataset(n_train=400, n_test=20)
    assert main(["--dataset", str(path), "--algorithms", "faiss-flat,faiss-ivf", "--runs", "1", "--no-plots", "--no-progress", *dirs]) == 0
    out = capsys.readouterr().out
    assert "records: 7 written" in out
    assert main(["results", "--dataset", str(path), "--format", "csv", *dirs]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 7 and set(CSV_COLUMNS) <= set(rows[0])
    assert {r["algorithm"] for r in rows} == {"faiss-flat", "faiss-ivf"}
    assert main(["results", "--dataset", path.stem, "--format", "table", *dirs]) == 0
    assert "faiss-ivf" in capsys.readouterr().out


def test_unknown_dataset_suggests(dirs, capsys):
    assert main(["--dataset", "sift-12", *dirs]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset" in err.lower() and "sift-128" in err and "Traceback" not in err


def test_unknown_algorithm_suggests(make_tiny_dataset, dirs, capsys):
    assert main(["--dataset", str(make_tiny_dataset()), "--algorithms", "hnswlb", *dirs]) == 2
    err = capsys.readouterr().err
    assert "unknown algorithm 'hnswlb'" in err and "hnswlib" in err


@pytest.mark.slow
def test_offline_download_names_url_and_path(tmp_path, dirs, capsys):
    code = main(["--dataset", "sift-128", "--data-dir", str(tmp_path / "data"), *dirs])
    err = capsys.readouterr().err
    assert code != 0
    assert "sift-128-euclidean.hdf5" in err and str(tmp_path / "data" / "sift-128-euclidean.hdf5") in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: --device cuda is valid here")
def test_cuda_without_gpu_is_a_clear_error(make_tiny_dataset, dirs, capsys):
    assert main(["--dataset", str(make_tiny_dataset()), "--device", "cuda", *dirs]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_unwritable_results_dir(make_tiny_dataset, tmp_path, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    code = main(["--dataset", str(make_tiny_dataset()), "--algorithms", "faiss-flat", "--results-dir", str(blocker / "r")])
    assert code == 2 and "cannot write into the results directory" in capsys.readouterr().err


def test_list_shows_algorithms_and_parameters(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("bruteforce", "faiss-ivf", "faiss-ivfpq", "faiss-hnsw", "hnswlib"):
        assert name in out
    assert "nprobe" in out and "ef_construction" in out


def test_datasets_list(capsys, tmp_path):
    assert main(["datasets", "list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "sift-128-euclidean" in out and "random-xs-20-euclidean" in out and "glove-100-angular" in out
    header, *rows = out.splitlines()
    assert header.split() == ["name", "distance", "dim", "train", "x", "test", "size", "status"]
    # sift: (1M train + 10k test) x 128 float32, and 10k x 100 neighbours + distances, 4 bytes each
    expected = ((1_000_000 + 10_000) * 128 * 4 + 10_000 * 100 * 2 * 4) / 2**20
    [sift] = [row for row in rows if row.startswith("sift-128-euclidean ")]
    assert f"~{expected:.0f} MiB" in sift, sift
    assert "estimate from the registry's shapes" in out  # the ~ is explained


def test_a_registered_exact_size_is_shown_as_exact():
    from harness.commands import _bytes
    from harness.data.registry import DatasetInfo, file_size

    known = DatasetInfo("x", "euclidean", 8, 100, 10, size_bytes=3 * 2**30)
    assert file_size(known) == (3 * 2**30, True) and _bytes(3 * 2**30) == "3.0 GiB"
    guessed = DatasetInfo("y", "euclidean", 8, 100, 10, generated=True)
    assert file_size(guessed) == ((100 + 10) * 8 * 4 + 10 * 100 * 2 * 8, False)


def test_results_for_a_dataset_without_records_names_those_with_records(tmp_path, capsys):
    from records_factory import write_synthetic_records

    results = tmp_path / "results"
    write_synthetic_records(results, "random-xs-20-euclidean", include_failed=False)
    assert main(["results", "--dataset", "random-xs-20-euclidan", "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err
    assert "no records" in err and "did you mean 'random-xs-20-euclidean'?" in err
    assert main(["results", "--dataset", "sift-128-euclidean", "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err
    assert "did you mean" not in err and "datasets with records under" in err and "random-xs-20-euclidean" in err


def test_list_prints_the_common_potential_parameters_once(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    max_iters = "    query max_iters: int = 100: iteration cap per query"
    assert lines.count(max_iters) == 1  # once, in the common block; every climbing potential takes it
    common = next(i for i, line in enumerate(lines) if line.startswith("common parameters of the potentials"))
    assert lines.index(max_iters) > common
    gaussian = lines.index(next(line for line in lines if line.startswith("potential-gaussian ")))
    assert common < gaussian and any("beta" in line for line in lines[gaussian + 1:gaussian + 4])
    # an algorithm whose own parameter shares a common one's name says so
    tree = lines.index(next(line for line in lines if line.startswith("potential-tree ")))
    assert any("differ or are absent" in line and "max_iters" in line for line in lines[tree:])


def test_list_name_shows_one_algorithm_in_full(capsys):
    assert main(["list", "potential-gaussian"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("potential-gaussian ") and not any(line.startswith(("faiss", "common")) for line in lines)
    assert "    query max_iters: int = 100: iteration cap per query" in lines and any(" beta:" in line for line in lines)
    assert main(["list", "faiss-ivv"]) == 2
    assert "did you mean faiss-ivf" in capsys.readouterr().err


def test_help_teaches_and_python_m_works():
    done = subprocess.run([sys.executable, "-m", "harness", "--help"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0
    assert "--dataset" in done.stdout and "examples:" in done.stdout and "results" in done.stdout


def test_bad_count_is_refused(make_tiny_dataset, dirs, capsys):
    path = make_tiny_dataset(n_train=50)
    assert main(["--dataset", str(path), "--count", "60", "--algorithms", "faiss-flat", *dirs]) == 2
    assert "--count 60" in capsys.readouterr().err


@pytest.mark.slow
def test_plot_report_and_landscape_subcommands(make_tiny_dataset, dirs, tmp_path, capsys):
    path = make_tiny_dataset(n_train=300, n_test=10)
    assert main(["--dataset", str(path), "--algorithms", "faiss-flat", "--runs", "1", "--workers", "0",
                 "--no-plots", "--no-progress", *dirs]) == 0
    assert main(["plot", "--dataset", str(path), *dirs]) == 0
    plots = tmp_path / "plots" / path.stem
    assert (plots / "recall1-qps.png").is_file() and not (plots / "index.html").exists()
    other = make_tiny_dataset("other-8-euclidean.hdf5", n_train=300, n_test=10)
    assert main(["--dataset", str(other), "--algorithms", "faiss-flat", "--runs", "1", "--workers", "0",
                 "--no-plots", "--no-progress", *dirs]) == 0
    assert main(["report", "--dataset", str(path), *dirs]) == 0
    assert (plots / "index.html").is_file()
    index = (tmp_path / "plots" / "index.html").read_text()  # every dataset with records, not only this one
    assert f'href="{path.stem}/index.html"' in index and ">other-8-euclidean<" in index
    assert main(["landscape", "--figures", "contours-2d", *dirs]) == 0
    out = capsys.readouterr().out
    assert "naive" in out and (tmp_path / "plots" / "landscape" / "contours-2d.svg").is_file()
    assert main(["landscape", "--figures", "nope", *dirs]) == 2
    assert main(["plot", "--dataset", "never-ran", *dirs]) == 2
