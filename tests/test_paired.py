"""Paired statistics from the stored per-query answers: method beside control, A beside B, and a
summary that chooses on tuning queries and reports held-out ones (harness.report.paired)."""
from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from harness.hits import EPSILON
from harness.records import load_arrays, load_records
from harness.report.paired import Answers, Truth, paired_interval, mean_difference, tune_split
from harness.report.summary import control_notes, control_rows
from records_factory import answers_with_hits, make_document, write_answered, write_ground_truth_file

ROOT = Path(__file__).resolve().parent.parent
DATASET = "paired-4-euclidean"
N = 50
PAIRED = ("mcnemar_p", "recall_gain_low", "recall_gain_high", "dist_ratio_low", "dist_ratio_high")


def _hits(pattern: str) -> np.ndarray:
    return np.array([c == "1" for c in pattern])


# method: 45 of 50 right; ascent=none control: 36; a second control (stop=geometric): 44
METHOD = _hits("1" * 40 + "0" * 2 + "1" * 5 + "0" * 3)
CONTROL = _hits("1" * 30 + "0" * 10 + "1" * 6 + "0" * 4)
SECOND = _hits("1" * 44 + "0" * 6)


@pytest.fixture
def store(tmp_path):
    """A truth file, and a results directory with one method record and its controls."""
    data = tmp_path / "data" / f"{DATASET}.hdf5"
    checksum, truth = write_ground_truth_file(data, N)
    results = tmp_path / "results"
    rng = np.random.default_rng(3)

    def write(hits, query, role, dist_comps, n=N, **fields):
        document = make_document(DATASET, "potential-gaussian-ivf", {"nlist": 8}, query, 0.0, 1000.0, n_queries=n,
                                 role=role, control_switch=fields.pop("switch", "ascent=none"), **fields)
        arrays = {**answers_with_hits(hits[:n], truth), "dist_comps": dist_comps[:n]}
        return write_answered(results, document, arrays, truth, (data, checksum))

    control_query = {"nprobe": 2, "ascent": "none"}
    second_query = {"nprobe": 2, "stop": "geometric"}
    controls = [{"switch": "ascent=none", "query_params": control_query},
                {"switch": "stop=geometric", "query_params": second_query}]
    write(METHOD, {"nprobe": 2}, "method", rng.integers(150, 250, N).astype(float), control_query_params=control_query,
          controls=controls)
    write(CONTROL, control_query, "control", rng.integers(90, 110, N).astype(float))
    write(SECOND, second_query, "control", rng.integers(120, 160, N).astype(float), switch="stop=geometric")
    return {"results": results, "data": data, "truth": Truth(**truth), "checksum": checksum}


def _answers(store):
    return Answers({store["checksum"]: store["truth"]})


def _rows(store, answers=None):
    records = load_records(store["results"], DATASET)
    return records, control_rows(records, answers if answers is not None else _answers(store))


def test_per_query_hits_are_the_stored_answers_and_average_to_the_stored_recall(store):
    records, _ = _rows(store)
    answers = _answers(store)
    method = next(r for r in records if r["role"] == "method")
    assert answers.why_not(method) is None
    assert np.array_equal(answers.hits(method), METHOD)
    for record in records:
        for name in ("recall_at_1", "recall_at_k", "recall_at_1_id", "recall_at_k_id"):
            assert answers.scores(record, name).mean() == pytest.approx(record["metrics"][name], abs=1e-12)


def test_a_recall_the_answers_do_not_reproduce_refuses_the_record(store):
    records, _ = _rows(store)
    method = next(r for r in records if r["role"] == "method")
    shifted = Truth(store["truth"].neighbors, store["truth"].distances + 5.0)  # another file's truth
    answers = Answers({store["checksum"]: shifted})
    assert answers.hits(method) is None and "differs from the record's" in answers.why_not(method)


def test_discordant_counts_and_mcnemar_p_agree_with_an_exact_binomial_test_of_the_stored_answers(store):
    records, rows = _rows(store)
    row = next(r for r in rows if r["control"] == "ascent=none")
    truth = store["truth"].distances
    right = {}
    for record in records:  # the hits computed here, independently, from the arrays files
        arrays = load_arrays(record)
        right[record["control_switch"] if record["role"] == "control" else "method"] = (
            arrays["distances"][:, 0] <= truth[:N, 0] + EPSILON)
    b = int(np.sum(right["method"] & ~right["ascent=none"]))
    c = int(np.sum(~right["method"] & right["ascent=none"]))
    assert (b, c) == (int(np.sum(METHOD & ~CONTROL)), int(np.sum(~METHOD & CONTROL))) == (row["only_method"], row["only_control"])
    assert (b, c) == (11, 2)
    n = b + c
    by_hand = min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n)
    assert row["mcnemar_p"] == pytest.approx(by_hand, rel=1e-12)
    assert row["mcnemar_p"] == pytest.approx(stats.binomtest(b, n, 0.5).pvalue, rel=1e-12)
    assert row["mcnemar_p"] < 0.05  # 11 against 2 discordant queries


def test_no_discordant_query_gives_p_one(store):
    records, _ = _rows(store)
    method = next(r for r in records if r["role"] == "method")
    from harness.report.paired import pair

    paired, note = pair(_answers(store), method, method)
    assert note is None and paired["only_method"] == paired["only_control"] == 0 and paired["mcnemar_p"] == 1.0


def test_bootstrap_intervals_contain_the_estimate_and_are_reproducible(store):
    _, rows = _rows(store)
    _, again = _rows(store)
    for row, repeat in zip(rows, again):
        assert row["recall_gain_low"] <= row["recall_gain"] <= row["recall_gain_high"]
        assert row["recall_gain_low"] < row["recall_gain_high"]
        assert row["dist_ratio_low"] <= row["dist_ratio"] <= row["dist_ratio_high"]
        assert all(row[c] == repeat[c] for c in PAIRED)
    other_seed = paired_interval(mean_difference, METHOD, CONTROL, seed=1)
    assert other_seed != paired_interval(mean_difference, METHOD, CONTROL) == paired_interval(mean_difference, METHOD, CONTROL)


def test_a_method_with_two_controls_gets_a_row_for_each(store):
    _, rows = _rows(store)
    assert [r["control"] for r in rows] == ["ascent=none", "stop=geometric"]
    second = rows[1]
    assert (second["only_method"], second["only_control"]) == (int(np.sum(METHOD & ~SECOND)), int(np.sum(~METHOD & SECOND)))
    assert second["control_recall_at_1"] == pytest.approx(SECOND.mean())
    assert all(row[c] is not None for row in rows for c in PAIRED)


def test_controls_on_other_queries_stand_beside_unpaired_with_the_reason_once(store, tmp_path):
    records = load_records(store["results"], DATASET)
    for record in records:
        if record["role"] == "control":
            record["n_queries"] = 40  # as if the control had been run on fewer queries
    rows = control_rows(records, _answers(store))
    assert len(rows) == 2 and all(row["control_recall_at_1"] is not None for row in rows)
    assert all(row[c] is None for row in rows for c in PAIRED)
    notes = control_notes(rows)
    assert notes == ["paired statistics empty in 2 row(s): measured on different numbers of queries (50 and 40)"]


def test_compare_adds_the_paired_recall_test_when_both_sides_ran_the_same_queries(store):
    from harness.report.compare import compare_rows

    records = load_records(store["results"], DATASET)
    method = [r for r in records if r["role"] == "method"]
    control = [r for r in records if r.get("control_switch") == "ascent=none" and r["role"] == "control"]
    pairs = [("potential-gaussian-ivf", "potential-gaussian-ivf [ascent=none]")]
    [row] = compare_rows(method, control, pairs, [0.7], answers=_answers(store))
    assert (row["only_a"], row["only_b"]) == (11, 2)
    assert row["mcnemar_p"] == pytest.approx(stats.binomtest(11, 13, 0.5).pvalue)
    [unread] = compare_rows(method, control, pairs, [0.7])
    assert unread["mcnemar_p"] is None and unread["paired_note"]


def _results(store, *extra, fmt="csv", capsys=None):
    from harness.cli import main

    code = main(["results", "--dataset", DATASET, "--results-dir", str(store["results"]), "--data-dir",
                 str(store["data"].parent), "--summary", "--format", fmt, *extra])
    assert code == 0
    return capsys.readouterr().out


def split_csv(text: str) -> tuple[list[dict], list[dict]]:
    """The summary CSV and the control CSV of `results --summary --format csv`, as a reader splits them."""
    summary_part, _, rest = text.partition("\n\n# what the climb adds")
    control_part = "\n".join(line for line in rest.splitlines()[1:] if not line.startswith("#"))
    summary_lines = "\n".join(line for line in summary_part.splitlines() if not line.startswith("#"))
    return list(csv.DictReader(io.StringIO(summary_lines))), list(csv.DictReader(io.StringIO(control_part)))


def test_the_summary_carries_the_control_table_in_every_format(store, capsys):
    summary, controls = split_csv(_results(store, capsys=capsys))
    assert summary and {"series", "qps", "recall"} <= set(summary[0])
    assert len(controls) == 2
    for column in PAIRED + ("only_method", "only_control"):
        assert all(row[column] != "" for row in controls), column
    document = json.loads(_results(store, fmt="json", capsys=capsys))
    assert len(document["controls"]) == 2 and all(document["controls"][0][c] is not None for c in PAIRED)
    assert document["summary"] and document["split"] is None
    for fmt in ("markdown", "latex", "table"):
        text = _results(store, fmt=fmt, capsys=capsys)
        # a text table within 120 columns breaks its headers at their underscores: the first part heads the column
        names = [c.split("_")[0] if fmt == "table" else c.replace("_", "\\_" if fmt == "latex" else "_") for c in PAIRED]
        assert "What the climb adds" in text and all(name in text for name in names)


def test_without_the_dataset_file_the_paired_cells_are_empty_and_the_reason_said(store, capsys):
    store["data"].rename(store["data"].with_name("elsewhere.hdf5"))
    text = _results(store, capsys=capsys)
    _, controls = split_csv(text)
    assert controls and all(row["mcnemar_p"] == "" for row in controls)
    assert text.count("is not at") == 1 and "give --data-dir" in text


def test_tuning_on_half_the_queries_exposes_a_choice_that_overfits(tmp_path, capsys):
    """A fast configuration answers every tuning query but misses held-out ones: recall 0.96
    in-sample (chosen at 0.95), 1.0 on the tuning half, 0.92 on the held-out half."""
    data = tmp_path / "data" / f"{DATASET}.hdf5"
    checksum, truth = write_ground_truth_file(data, N)
    split = tune_split(N, 0.5, 0)
    lucky = np.ones(N, dtype=bool)
    lucky[split.heldout[:2]] = False
    results = tmp_path / "results"
    for nprobe, hits, qps in ((1, lucky, 5000.0), (8, np.ones(N, dtype=bool), 1000.0)):
        document = make_document(DATASET, "faiss-ivf", {"nlist": 8}, {"nprobe": nprobe}, 0.0, qps, n_queries=N)
        write_answered(results, document, answers_with_hits(hits, truth), truth, (data, checksum))
    store = {"results": results, "data": data}
    in_sample = json.loads(_results(store, "--thresholds", "0.95", fmt="json", capsys=capsys))
    [row] = in_sample["summary"]
    assert row["label"].endswith("nprobe=1") and row["recall"] == pytest.approx(0.96) and "recall_heldout" not in row
    tuned = json.loads(_results(store, "--thresholds", "0.95", "--tune-fraction", "0.5", fmt="json", capsys=capsys))
    [row] = tuned["summary"]
    assert row["label"].endswith("nprobe=1")  # the in-sample choice, beside
    assert row["tuned_label"].endswith("nprobe=1") and row["recall_tune"] == 1.0
    assert row["recall_heldout"] == pytest.approx(23 / 25) and row["heldout_reaches"] is False
    assert row["recall_heldout_low"] < row["recall_heldout"] < row["recall_heldout_high"]
    assert row["tuned_qps"] == 5000.0 and (row["n_tune"], row["n_heldout"]) == (25, 25)
    assert tuned["split"]["fraction"] == 0.5 and tuned["split"]["seed"] == 0
    assert tuned["split"]["sizes"] == {"50": {"tune": 25, "heldout": 25}}
    text = _results(store, "--thresholds", "0.95", "--tune-fraction", "0.5", capsys=capsys)
    assert text.startswith("# tuning split: fraction 0.5, seed 0") and "whole-run" in text
    [csv_row], _ = split_csv(text)
    assert csv_row["heldout_reaches"] == "False"


def test_the_split_is_seeded_and_sized():
    a, b = tune_split(50, 0.5, 7), tune_split(50, 0.5, 7)
    assert np.array_equal(a.tune, b.tune) and not np.array_equal(a.tune, tune_split(50, 0.5, 8).tune)
    assert len(a.tune) == 25 and sorted(np.concatenate([a.tune, a.heldout]).tolist()) == list(range(50))
    assert len(tune_split(10, 0.3).tune) == 3


def test_the_report_says_which_mode_its_summary_uses(store, tmp_path):
    from harness.report.page import write_report

    records = load_records(store["results"], DATASET)
    page = write_report(records, tmp_path / "plots", DATASET, []).read_text()
    assert "in-sample" in page and "mcnemar_p" in page and "recall_gain_low" in page
    tuned = write_report(records, tmp_path / "plots2", DATASET, [], answers=_answers(store), tuning=(0.5, 0)).read_text()
    assert "tuned on a split" in tuned and "recall_heldout" in tuned


@pytest.mark.slow
def test_end_to_end_a_potential_ivf_run_then_the_csv_summary_has_the_paired_columns(tmp_path):
    dataset = ROOT / "tests" / "data" / "siftsmall-128-euclidean.hdf5"
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("potential-gaussian-ivf:\n  build: {nlist: [16]}\n  query: {nprobe: [1, 2]}\n")
    results = tmp_path / "results"
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    run = [sys.executable, "-m", "harness", "--dataset", str(dataset), "--algorithms", "potential-gaussian-ivf",
           "--sweep", str(sweep), "--queries", "50", "--runs", "1", "--workers", "0", "--no-plots",
           "--no-progress", "--results-dir", str(results)]
    done = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = subprocess.run([sys.executable, "-m", "harness", "results", "--dataset", str(dataset), "--results-dir",
                          str(results), "--summary", "--format", "csv"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    _, controls = split_csv(out.stdout)
    assert controls, out.stdout
    for column in PAIRED:
        assert all(row[column] != "" for row in controls), (column, out.stdout)


def test_a_method_pairs_with_its_control_at_the_same_batch_size_only(store):
    records = load_records(store["results"], DATASET)
    for record in records:
        record["batch_size"] = 100 if record["role"] == "method" else 1000  # the controls ran at another batch size
    rows = control_rows(records, _answers(store))
    assert rows and all(row["control_recall_at_1"] is None for row in rows)  # q/s of other call shapes never pair
