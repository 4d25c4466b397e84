"""Per-query difficulty from stored true distances, recall per difficulty tercile, and the
cross-dataset score: each checked against a hand computation."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.report.difficulty import (
    by_tercile, lid_mle, neighbour_ratio, relative_contrast, tercile_columns, terciles,
)
from harness.report.score import dataset_scores, front_area, score_rows
from tests.records_factory import make_document


def test_lid_mle_matches_a_hand_computation() -> None:
    d = np.array([[1.0, 2.0, 4.0]])
    # -(1/3 (ln 1/4 + ln 2/4 + ln 4/4))^-1 = 3 / (ln 4 + ln 2) = 3 / ln 8
    assert lid_mle(d, k=3)[0] == pytest.approx(3.0 / math.log(8.0))
    # only the first k columns count
    assert lid_mle(np.array([[1.0, 2.0, 4.0, 100.0]]), k=3)[0] == pytest.approx(3.0 / math.log(8.0))


def test_lid_mle_leaves_out_duplicates_and_says_undefined() -> None:
    d = np.array([
        [0.0, 2.0, 4.0],   # a duplicate: mean over the two positive terms, -(1/2 ln 1/2)^-1 = 2 / ln 2
        [0.0, 0.0, 0.0],   # d_k = 0: undefined
        [3.0, 3.0, 3.0],   # all equidistant: the sum is 0, LID infinite
    ])
    lid = lid_mle(d, k=3)
    assert lid[0] == pytest.approx(2.0 / math.log(2.0))
    assert math.isnan(lid[1])
    assert lid[2] == math.inf


def test_relative_contrast_and_neighbour_ratio_by_hand() -> None:
    d = np.array([[1.0, 2.0, 6.0], [0.0, 1.0, 2.0], [2.0, 2.0, 2.0], [0.0, 0.0, 0.0]])
    rc = relative_contrast(d)
    assert rc[0] == pytest.approx(3.0) and rc[1] == math.inf and rc[2] == pytest.approx(1.0) and math.isnan(rc[3])
    ratio = neighbour_ratio(d)
    assert ratio[0] == pytest.approx(2.0) and ratio[1] == math.inf and ratio[2] == 1.0 and ratio[3] == 1.0


def test_terciles_run_from_easiest_to_hardest_and_keep_ties_together() -> None:
    lid = np.array([5.0, 1.0, 9.0, 3.0, 7.0, 11.0, np.nan])
    assert terciles(lid).tolist() == [1, 0, 2, 0, 1, 2, -1]
    # a higher relative contrast is easier: the order flips
    assert terciles(lid, harder_is_higher=False).tolist() == [1, 2, 0, 2, 1, 0, -1]
    assert len(set(terciles(np.array([1.0, 2.0, 2.0, 2.0, 3.0, 4.0]))[1:4])) == 1


def test_recall_per_tercile_of_a_records_first_queries() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2, 2])  # the dataset's seven queries
    hits = np.array([1.0, 1.0, 0.0, 0.0, 1.0, 0.0])  # a record of its first six
    assert by_tercile(hits, labels) == [0.5, 1.0, 0.0]
    assert tercile_columns("recall_at_1", hits, labels) == {
        "recall_at_1_lid_t1": 0.5, "recall_at_1_lid_t2": 1.0, "recall_at_1_lid_t3": 0.0}
    assert by_tercile(np.array([1.0]), labels) == [1.0, None, None]


def test_front_area_is_a_step_function_without_interpolation() -> None:
    # 1000 q/s up to recall 0.7, 10 q/s up to 0.9, nothing beyond: 3 x 0.2 + 1 x 0.2
    assert front_area([(0.7, 1000.0), (0.9, 10.0)]) == pytest.approx(0.8)
    # a run below the floor adds nothing; a slower run dominated at every recall adds nothing
    assert front_area([(0.7, 1000.0), (0.9, 10.0), (0.4, 1e6), (0.6, 100.0)]) == pytest.approx(0.8)


def _record(dataset: str, algorithm: str, recall: float, qps: float) -> dict:
    document = make_document(dataset, algorithm, {"n": 1}, {"q": recall}, recall, qps)
    return document


def test_scores_are_normalised_per_dataset_by_its_best_series_then_averaged() -> None:
    records = [
        # dataset A: x has area 3 x 0.5 = 1.5, y has 1 x 0.5 = 0.5
        _record("A", "x", 1.0, 1000.0), _record("A", "y", 1.0, 10.0),
        # dataset B: x has 2 x 0.25 = 0.5 (reaches 0.75 only), y has 2 x 0.5 = 1.0
        _record("B", "x", 0.75, 100.0), _record("B", "y", 1.0, 100.0),
        # dataset C: only y ran, below the floor: no score for C at all
        _record("C", "y", 0.3, 100.0),
        # dataset D: only x
        _record("D", "x", 1.0, 10.0),
    ]
    per = dataset_scores(records)
    assert set(per) == {"A", "B", "D"}
    assert per["A"]["y"]["score"] == pytest.approx(1 / 3) and per["A"]["x"]["score"] == 1.0
    assert per["B"]["x"]["score"] == pytest.approx(0.5) and per["B"]["y"]["score"] == 1.0
    rows = {r["series"]: r for r in score_rows(records)}
    assert rows["x"]["score"] == pytest.approx((1.0 + 0.5 + 1.0) / 3) and rows["x"]["n_datasets"] == 3
    assert rows["y"]["score"] == pytest.approx((1 / 3 + 1.0) / 2) and rows["y"]["n_datasets"] == 2


def _store(tmp_path, n: int, source: bool):
    """A truth file (20 stored neighbours per query; with `source`, a corrupted-pattern file whose
    source is the true NN for the first half of the queries and another point after) and its checksum."""
    import h5py

    from harness.data.loader import file_checksum
    from tests.records_factory import write_ground_truth_file

    data = tmp_path / "data" / "difficulty-4-euclidean.hdf5"
    _, truth = write_ground_truth_file(data, n, k=15, seed=4)
    if source:
        pattern = truth["neighbors"][:, 0].astype(np.int64).copy()
        pattern[n // 2:] = truth["neighbors"][n // 2:, 5]
        with h5py.File(data, "a") as f:
            f.create_dataset("source", data=pattern)
            f.attrs["corruption_sigma"] = 2.0
    return data, file_checksum(data), truth


def _results_csv(results, data, capsys) -> list[dict]:
    import csv
    import io

    from harness.cli import main

    assert main(["results", "--dataset", "difficulty-4-euclidean", "--results-dir", str(results), "--data-dir",
                 str(data.parent), "--format", "csv"]) == 0
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


@pytest.mark.slow
def test_the_results_csv_gets_recall_at_1_per_lid_tercile(tmp_path, capsys) -> None:
    from tests.records_factory import answers_with_hits, write_answered

    n = 30
    data, checksum, truth = _store(tmp_path, n, source=False)
    hardest = terciles(lid_mle(truth["distances"], 20)) == 2
    hits = ~hardest  # every query right but the hardest third (by LID)
    document = make_document("difficulty-4-euclidean", "faiss-ivf", {"nlist": 4}, {"nprobe": 1}, 0.0, 500.0, n_queries=n, k=10)
    write_answered(tmp_path / "results", document, answers_with_hits(hits, truth), truth, (data, checksum))
    [row] = _results_csv(tmp_path / "results", data, capsys)
    assert [float(row[f"recall_at_1_lid_t{t}"]) for t in (1, 2, 3)] == [1.0, 1.0, 0.0]
    assert row["source_recovery_rate"] == ""  # not a corrupted-pattern dataset


@pytest.mark.slow
def test_a_corrupted_pattern_dataset_gets_its_source_recovery_rate(tmp_path, capsys) -> None:
    from tests.records_factory import answers_with_hits, write_answered

    n = 30
    data, checksum, truth = _store(tmp_path, n, source=True)
    hits = np.ones(n, dtype=bool)  # the exact NN every time: the source for the first half only
    document = make_document("difficulty-4-euclidean", "bruteforce", {}, {}, 0.0, 500.0, n_queries=n, k=10)
    write_answered(tmp_path / "results", document, answers_with_hits(hits, truth), truth, (data, checksum))
    [row] = _results_csv(tmp_path / "results", data, capsys)
    assert float(row["recall_at_1"]) == 1.0 and float(row["source_recovery_rate"]) == pytest.approx(0.5)


@pytest.mark.slow
def test_the_report_and_the_index_show_difficulty_sigma_and_the_score(tmp_path) -> None:
    from harness.records import load_records
    from harness.report.page import write_index, write_report
    from harness.report.paired import Answers, Truth
    from tests.records_factory import answers_with_hits, write_answered

    n = 30
    data, checksum, truth = _store(tmp_path, n, source=True)
    hits = np.ones(n, dtype=bool)
    for algorithm, qps in (("bruteforce", 100.0), ("faiss-ivf", 900.0)):
        document = make_document("difficulty-4-euclidean", algorithm, {}, {}, 0.0, qps, n_queries=n, k=10)
        write_answered(tmp_path / "results", document, answers_with_hits(hits, truth), truth, (data, checksum))
    records = load_records(tmp_path / "results", "difficulty-4-euclidean")
    answers = Answers({checksum: Truth(**truth, source=truth["neighbors"][:, 0].copy(), sigma=2.0)})
    page = write_report(records, tmp_path / "plots" / "d", "difficulty-4-euclidean", [], answers=answers).read_text()
    assert "Where it fails: by query difficulty" in page and (tmp_path / "plots" / "d" / "difficulty.png").is_file()
    assert "recall_<wbr>at_<wbr>1_<wbr>lid_<wbr>t3" in page and "source_<wbr>recovery_<wbr>rate" in page
    index = write_index(records, tmp_path / "plots", answers=answers).read_text()
    assert "Corrupted patterns: recall@1 and source recovery against sigma" in index
    assert (tmp_path / "plots" / "corrupted-sigma.png").is_file()
    assert "One number per series" in index and "difficulty-4-euclidean 1.000" in index
