"""Is there a role in which the potential adds something? Three tries, each beside its control.

1. `potential-probe`: IVF probing that stops when the Gaussian potential's estimate of the mass in
   the unprobed cells falls below the probed mass; control `stop=geometric` (the same loop, same
   bound distances, no potential), and faiss-ivf at fixed nprobe on the same nlist (same cells).
2. `potential-tree`: coarse-to-fine climbs down a k-means tree; control `descent=greedy` (the same
   tree searched by centroid distance).
3. potential_1's fixed-point (weighted-mean) update against the note's normalised rule, on the
   note's own setting (algorithms/potential/note_reference.py: 1000 points in [0,2]^64, fp64).

Roles 1 and 2 are harness runs (`python -m harness --sweep bench/potential_roles-<dataset>.yaml ...`,
a subprocess; siftsmall, random-s-100; another dataset takes siftsmall's sweep), with faiss-hnsw and
bruteforce; every method on the same query set of a dataset (siftsmall: all 200; random-s-100: the first
1000). Each sweep covers the roles' own parameters (the probe's beta and tolerance, the tree's pull and
coarse_beta) as well as the parameters every series shares with its control (alpha, the widths, nprobe).
The script then reads the records (`harness.records.load_records`) and builds the tables below, which
the harness lacks.

Choosing and scoring on different queries. A configuration chosen as the cheapest reaching a recall on
the very queries it is then scored on looks better than it is (its recall is the maximum of many noisy
estimates), and a role parameter tuned that way carries the same bias. So the query set is split once,
by a seeded permutation printed in the header (--tune-fraction, --split-seed), into a tuning half and a
held-out half. Per recall@1 threshold (0.9, 0.95, 0.99) and per series (a method, its control, faiss-ivf
per nlist, ...): the configuration with the fewest distance computations per query (on the tuning half)
among those whose recall@1 on the tuning half reaches the threshold; then, on the held-out half only,
its recall@1 with a 95 % Wilson interval, its mean distances per query, and whether it still reaches the
threshold. Per-query hits are recomputed from each record's stored answers against the dataset's ground
truth by the rule the run scored with, and distances per query are the record's own array
(`harness.report.paired`: `Answers`, the split `tune_split`, the paired bootstrap `paired_interval`).

Printed per dataset:
  * per threshold and series: that choice, held-out recall and distances, q/s min / median / max over
    the timed runs (a whole-run figure over all the queries: it cannot be split; the configuration was
    chosen by its recall on the tuning half), and the best median q/s of any configuration of the series
    reaching the threshold on the tuning half;
  * role 1 per nlist: held-out distances of potential-probe, its geometric control and faiss-ivf, and the
    ratios faiss-ivf / probe and geometric / probe, each with a 95 % paired bootstrap interval over the
    held-out queries (the same queries resampled for both sides; ratio of mean distances); the q/s ratio
    of the fastest configurations reaching the threshold on the tuning half (median / median, with the
    min / max and max / min spread);
  * role 2: the tree's climb against its greedy control and faiss-ivf (any nlist), likewise;
  * `python -m harness results --summary --tune-fraction F --tune-seed S` on the records, as the harness
    prints it: per threshold and series the fastest configuration (in-sample, and chosen on the same
    tuning half with its held-out recall), then every method configuration beside its control over all
    the queries with the paired statistics (recall gain, McNemar, distance ratio with intervals).
Role 3 prints the note's converged rate (landing within 1e-3 of the true NN) step by step for both
rules on the same queries, and the steps each needs to reach a rate.

Role 3 measures what the harness cannot (the trajectory of a climb) and calls algorithms.potential directly.

Distance counts are deterministic; q/s are not: this runs on a shared 2-core VM whose q/s vary by up
to 2x between runs (hence min / median / max). Output goes to bench/results/potential_roles-<dataset>.txt
and bench/results/potential_roles-fixed-point.txt (overwritten each run), headed by the machine,
libraries and commit the records name and the command line.

    python bench/potential_roles.py                              # everything (~15 min on 2 loaded cores)
    python bench/potential_roles.py --datasets siftsmall --runs 2 --skip-fixed-point
    python bench/potential_roles.py --datasets none              # role 3 only
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import h5py
import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drive import ALIASES, ROOT, Output, dataset_specs, harness, head, records_dir  # noqa: E402

from algorithms.potential import Field, climb, field_step, get_potential, make_rule  # noqa: E402
from algorithms.potential.note_reference import EPS, RATE, C, note_data  # noqa: E402
from harness.records import load_records  # noqa: E402
from harness.report.paired import (  # noqa: E402
    BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, DEFAULT_TUNE_SEED, Answers, Truth, mean_ratio, paired_interval, tune_split,
)
from harness.report.summary import is_ok, metric, run_spread, series_name, wilson  # noqa: E402

# per dataset (short or full name): its sweep and its query set; any other dataset takes siftsmall's
SWEEPS = {"siftsmall": Path(__file__).with_name("potential_roles-siftsmall.yaml"),
          "random-s-100": Path(__file__).with_name("potential_roles-random-s-100.yaml")}
QUERIES = {"siftsmall": 200, "random-s-100": 1000}
FULL_NAMES = {"siftsmall-128-euclidean": "siftsmall", "random-s-100-euclidean": "random-s-100"}
OUT = Path(__file__).with_name("results")
THRESHOLDS = (0.9, 0.95, 0.99)
SLACK = 1e-9  # a recall stored as 0.8999999999 means 0.9
CHECKPOINTS = (1, 2, 3, 4, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 3000, 4000)

Record = Mapping[str, Any]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="siftsmall,random-s-100", help="comma list (siftsmall, random-s-100, a name or path); 'none' for none")
    parser.add_argument("--queries", type=int, default=None, help="first N test queries (default: siftsmall 200, random-s-100 1000)")
    parser.add_argument("--runs", type=int, default=3, help="timed repetitions per configuration")
    parser.add_argument("--threads", type=int, default=1, help="threads per method (default 1: the VM's 2 cores are shared)")
    parser.add_argument("--tune-fraction", type=float, default=0.5, help="share of the queries configurations are chosen on (the rest score them)")
    parser.add_argument("--split-seed", type=int, default=DEFAULT_TUNE_SEED, help="seed of the tuning / held-out split")
    parser.add_argument("--resamples", type=int, default=BOOTSTRAP_RESAMPLES, help="bootstrap resamples per ratio interval")
    parser.add_argument("--skip-fixed-point", action="store_true", help="leave role 3 out")
    parser.add_argument("--fixed-point-queries", type=int, default=100, help="queries of the note's setting for role 3 (the note: 1000)")
    parser.add_argument("--steps", type=int, default=4000, help="role 3: the note's steps")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--results-dir", type=Path, default=None, help="keep (and reuse) the records here")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--sweep", type=Path, default=None, help="one sweep file for every dataset (default: per dataset)")
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0.0 < args.tune_fraction < 1.0:
        parser.error(f"--tune-fraction must be strictly between 0 and 1 (both halves need queries), got {args.tune_fraction}")
    if args.resamples < 100:
        parser.error(f"--resamples must be at least 100, got {args.resamples}")
    return args


# --- per-query statistics: split, selection on the tuning half, paired intervals on the held-out half ---

def ratio_interval(a: np.ndarray, b: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float, float]:
    """mean(a) / mean(b) and its 95 % bootstrap interval, the queries resampled jointly for both sides
    (a[i] and b[i] are the same query's; `harness.report.paired`, seeded)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    low, high = paired_interval(mean_ratio, a, b, seed=BOOTSTRAP_SEED, n_resamples=resamples)
    return float(mean_ratio(a, b)), low, high


@dataclass(frozen=True)
class Config:
    """One configuration of a series with its per-query outcome (positions as in the query set)."""

    series: str
    label: str
    hits: np.ndarray    # bool: recall@1 hit per query
    comps: np.ndarray   # distance computations per query
    record: Record | None = None


@dataclass(frozen=True)
class Choice:
    """The configuration chosen on the tuning half for a threshold, and how it does on the held-out half."""

    config: Config
    threshold: float
    tune_recall: float
    held_hits: int
    held_n: int
    held_comps: float
    held: np.ndarray    # the held-out positions (for paired intervals)

    @property
    def held_recall(self) -> float:
        return self.held_hits / self.held_n

    @property
    def reached(self) -> bool:
        """Whether the held-out recall@1 still reaches the threshold it was chosen for."""
        return self.held_recall >= self.threshold - SLACK

    def held_comps_per_query(self) -> np.ndarray:
        return self.config.comps[self.held]


def choose(configs: Sequence[Config], threshold: float, tune: np.ndarray, held: np.ndarray) -> Choice | None:
    """Among `configs`, those whose recall@1 on the `tune` queries reaches `threshold`, the one with the
    fewest distances per query there (ties: higher tuning recall, then label), scored on the `held` queries;
    None when none reaches it. The held-out queries play no part in the choice."""
    reaching = [c for c in configs if float(c.hits[tune].mean()) >= threshold - SLACK]
    if not reaching:
        return None
    best = min(reaching, key=lambda c: (float(c.comps[tune].mean()), -float(c.hits[tune].mean()), c.label))
    return Choice(best, threshold, float(best.hits[tune].mean()), int(best.hits[held].sum()), len(held),
                  float(best.comps[held].mean()), held)


def paired_ratio(a: Choice | None, b: Choice | None, resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float, float] | None:
    """Held-out mean distances of a over b's, with its paired bootstrap interval; None if a side is missing."""
    if a is None or b is None:
        return None
    return ratio_interval(a.held_comps_per_query(), b.held_comps_per_query(), resamples=resamples)


# --- roles 1 and 2: the records and the tables -------------------------------------------------------

def series_key(record: Record) -> str:
    """The harness's series name, with nlist for IVF-built methods (role 1 compares on the same nlist)."""
    nlist = (record.get("build_params") or {}).get("nlist")
    return series_name(record) + (f" nlist={nlist}" if nlist is not None else "")


def per_query_configs(records: Sequence[Record], answers: Answers) -> tuple[list[Config], list[str]]:
    """Every successful record as a Config: recall@1 hits recomputed from its stored answers by the run's rule
    (`harness.report.paired`, checked against the stored recall), its per-query distances; and why any
    record was left out."""
    configs, left_out = [], []
    for record in records:
        if not is_ok(record):
            continue
        hits, comps = answers.hits(record), answers.dist_comps(record)
        if hits is None or comps is None:
            left_out.append(f"{record.get('label')}: {answers.why_not(record) or 'no per-query distance counts'}")
            continue
        configs.append(Config(series_key(record), str(record.get("label")), hits, comps, record))
    return configs, left_out


def group(configs: Sequence[Config], keep: Callable[[Config], bool]) -> list[Config]:
    return [c for c in configs if keep(c)]


def fastest_reaching(configs: Sequence[Config], threshold: float, tune: np.ndarray) -> Config | None:
    """The configuration with the best median q/s whose recall@1 on the tuning half reaches `threshold`."""
    reaching = [c for c in configs if c.record is not None and float(c.hits[tune].mean()) >= threshold - SLACK]
    return max(reaching, key=lambda c: (qps_spread(c.record)[1], float(c.hits[tune].mean())), default=None)


def qps_spread(record: Record) -> tuple[float, float, float]:
    """q/s min, median, max over the record's timed runs (the median alone when runs are absent)."""
    median = metric(record, "qps")
    low, high = run_spread(record, "qps")
    return (low, median, high) if math.isfinite(low) else (median, median, median)


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, ",.0f")


def interval_cell(value: tuple[float, float, float] | None) -> str:
    return "-" if value is None else f"{value[0]:.2f} [{value[1]:.2f}, {value[2]:.2f}]"


def dist_cell(choice: Choice | None) -> str:
    """Held-out distances per query; '*' when the held-out recall@1 falls short of the threshold."""
    return "-" if choice is None else _fmt(choice.held_comps) + ("*" if not choice.reached else "")


def recall_cell(choice: Choice) -> str:
    low, high = wilson(choice.held_hits, choice.held_n)
    return f"{choice.held_recall:.4f} [{low:.3f}, {high:.3f}]"


def spread_text(config: Config | None) -> str:
    return "-" if config is None or config.record is None else " / ".join(_fmt(q) for q in qps_spread(config.record))


def qps_ratio_cell(a: Config | None, b: Config | None) -> str:
    """Median q/s of a over b's, with the spread of the runs (a's min / b's max .. a's max / b's min)."""
    if a is None or b is None or a.record is None or b.record is None:
        return "-"
    (a_lo, a_med, a_hi), (b_lo, b_med, b_hi) = qps_spread(a.record), qps_spread(b.record)
    return f"{a_med / b_med:.2f} ({a_lo / b_hi:.2f}-{a_hi / b_lo:.2f})"


def threshold_lines(configs: Sequence[Config], order: Sequence[str], threshold: float, tune: np.ndarray,
                    held: np.ndarray) -> list[str]:
    heading = [f"  recall@1 >= {threshold}: per series the configuration with the fewest distances/query whose recall@1 "
            "on the tuning half reaches it, scored on the held-out half",
            f"    {'series':44} {'tune r@1':>8} {'held-out r@1 [95% Wilson]':>25} {'reached':>7} {'held d/q':>9} "
            f"{'q/s min / median / max':>28} {'best q/s':>9}  configuration"]
    lines = []
    for name in order:
        series = group(configs, lambda c: c.series == name)
        choice = choose(series, threshold, tune, held)
        if choice is None:
            lines.append(f"    {name:44} {'not reached on the tuning half':>30}")
            continue
        best = fastest_reaching(series, threshold, tune)
        best_q = qps_spread(best.record)[1] if best is not None and best.record is not None else None
        lines.append(f"    {name:44} {choice.tune_recall:>8.4f} {recall_cell(choice):>25} {'yes' if choice.reached else 'NO':>7} "
                     f"{_fmt(choice.held_comps):>9} {spread_text(choice.config):>28} {_fmt(best_q):>9}  {choice.config.label}")
    return heading + lines


def role_one_lines(configs: Sequence[Config], tune: np.ndarray, held: np.ndarray, resamples: int) -> list[str]:
    """Per nlist and threshold: probe, geometric control, faiss-ivf on the held-out half; the ratios with
    paired bootstrap intervals; the q/s ratio."""
    nlists = sorted({int(c.series.rsplit("=", 1)[1]) for c in configs if c.series.startswith("potential-probe nlist=")})
    lines = ["Role 1, potential-probe against its geometric control and faiss-ivf on the same nlist (same cells).",
             "  d/q: mean distances per query on the held-out half of the configuration chosen on the tuning half"
             " (* : its held-out recall@1 falls short of the threshold)",
             "  ratios: held-out mean d/q of one side over the other's, with a 95 % paired bootstrap interval over the held-out queries",
             "  q/s: best median q/s of the configurations reaching the threshold on the tuning half (whole-run figures),"
             " probe / faiss-ivf, with the spread of the runs (min/max .. max/min)",
             f"    {'nlist':>5} {'recall@1':>8} {'probe d/q':>10} {'geometric':>10} {'faiss-ivf':>10} "
             f"{'faiss-ivf / probe [95%]':>24} {'geometric / probe [95%]':>24} {'probe q/s':>9} {'ivf q/s':>9} {'q/s ratio (spread)':>19}"]
    for nlist in nlists:
        names = {"probe": f"potential-probe nlist={nlist}", "geo": f"potential-probe [stop=geometric] nlist={nlist}",
                 "ivf": f"faiss-ivf nlist={nlist}"}
        for threshold in THRESHOLDS:
            series = {k: group(configs, lambda c, n=n: c.series == n) for k, n in names.items()}
            chosen, fast, q = choices(series, threshold, tune, held, ("probe", "ivf"))
            lines.append(f"    {nlist:>5} {threshold:>8} {dist_cell(chosen['probe']):>10} {dist_cell(chosen['geo']):>10} "
                         f"{dist_cell(chosen['ivf']):>10} "
                         f"{interval_cell(paired_ratio(chosen['ivf'], chosen['probe'], resamples)):>24} "
                         f"{interval_cell(paired_ratio(chosen['geo'], chosen['probe'], resamples)):>24} "
                         f"{_fmt(q['probe']):>9} {_fmt(q['ivf']):>9} {qps_ratio_cell(fast['probe'], fast['ivf']):>19}")
    return lines


def choices(sides: Mapping[str, Any], threshold: float, tune: np.ndarray, held: np.ndarray,
            timed: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, float | None]]:
    """Per side: the configuration chosen on the tuning half; for the `timed` sides the fastest one
    reaching the threshold on the tuning half, and its median q/s."""
    chosen = {k: choose(s, threshold, tune, held) for k, s in sides.items()}
    fast = {k: fastest_reaching(sides[k], threshold, tune) for k in timed}
    q = {k: qps_spread(f.record)[1] if f is not None and f.record is not None else None for k, f in fast.items()}
    return chosen, fast, q


def role_two_lines(configs: Sequence[Config], tune: np.ndarray, held: np.ndarray, resamples: int) -> list[str]:
    """Per threshold: the tree's climb, its greedy control, and faiss-ivf of any nlist (one series)."""
    lines = ["Role 2, potential-tree (coarse-to-fine climb) against its greedy control and faiss-ivf (any nlist: one series);",
             "  d/q, *, ratios and their intervals as in role 1; q/s: best median q/s reaching the threshold on the tuning half",
             f"    {'recall@1':>8} {'climb d/q':>10} {'greedy d/q':>10} {'faiss-ivf d/q':>13} {'climb / greedy [95%]':>24} "
             f"{'climb / faiss-ivf [95%]':>24} {'climb q/s':>9} {'greedy q/s':>10} {'q/s ratio (spread)':>19}"]
    sides = {"climb": group(configs, lambda c: c.series == "potential-tree"),
             "greedy": group(configs, lambda c: c.series == "potential-tree [descent=greedy]"),
             "ivf": group(configs, lambda c: c.series.startswith("faiss-ivf "))}
    for threshold in THRESHOLDS:
        chosen, fast, q = choices(sides, threshold, tune, held, ("climb", "greedy"))
        lines.append(f"    {threshold:>8} {dist_cell(chosen['climb']):>10} {dist_cell(chosen['greedy']):>10} "
                     f"{dist_cell(chosen['ivf']):>13} {interval_cell(paired_ratio(chosen['climb'], chosen['greedy'], resamples)):>24} "
                     f"{interval_cell(paired_ratio(chosen['climb'], chosen['ivf'], resamples)):>24} "
                     f"{_fmt(q['climb']):>9} {_fmt(q['greedy']):>10} {qps_ratio_cell(fast['climb'], fast['greedy']):>19}")
    return lines


def series_order(records: Sequence[Record]) -> list[str]:
    rank = {"potential-probe": 0, "faiss-ivf": 1, "potential-tree": 2, "faiss-hnsw": 3, "bruteforce": 4}
    names = {series_key(r): (rank.get(str(r.get("algorithm")), 9), r.get("role") == "control", series_key(r))
             for r in records if is_ok(r)}
    return sorted(names, key=lambda n: names[n])


def report_dataset(records: Sequence[Record], answers: Answers, tune: np.ndarray, held: np.ndarray,
                   resamples: int, out: Output) -> None:
    failed = [r for r in records if not is_ok(r)]
    if failed:
        out(f"   {len(failed)} configuration(s) failed: " + ", ".join(sorted({str(r.get('algorithm')) for r in failed})))
    configs, left_out = per_query_configs(records, answers)
    for note in left_out:
        out(f"   left out (no per-query scores): {note}")
    order = series_order(records)
    for threshold in THRESHOLDS:
        for line in threshold_lines(configs, order, threshold, tune, held):
            out(line)
    out()
    for line in role_one_lines(configs, tune, held, resamples):
        out(line)
    out()
    for line in role_two_lines(configs, tune, held, resamples):
        out(line)


def run_dataset(spec: str, args: argparse.Namespace, argv: Sequence[str], root: Path, out: Output) -> None:
    """The harness run of one dataset's sweep, `results --summary` on its records, then the roles' tables."""
    short = FULL_NAMES.get(spec, spec)
    sweep = (args.sweep or SWEEPS.get(short, SWEEPS["siftsmall"])).resolve()
    size = args.queries or QUERIES.get(short, 200)
    where = root / spec.replace("/", "_")
    data_dir = ["--data-dir", args.data_dir] if args.data_dir else []
    started = time.perf_counter()
    harness(["--dataset", ALIASES.get(spec, spec), "--sweep", sweep, "--queries", size, "--runs", args.runs,
             "--threads", args.threads, "--results-dir", where, "--no-plots", "--workers", "0", "--no-progress",
             *data_dir], out)
    out(f"sweep took {time.perf_counter() - started:.0f} s\n")
    records = [r for r in load_records(where) if r.get("n_queries") == min(size, int(r.get("n_queries_total") or size))]
    if not records:
        raise SystemExit(f"error: the harness wrote no records of {size} queries under {where}")
    first = records[0]
    size = int(first["n_queries"])
    harness(["results", "--summary", "--results-dir", where, "--tune-fraction", args.tune_fraction,
             "--tune-seed", args.split_seed, *data_dir], out)
    split = tune_split(size, args.tune_fraction, args.split_seed)
    out()
    out(f"{first['dataset']}: {first.get('n_train')} x {first.get('dimension')}, {first.get('n_queries_total')} test queries;"
        f" every method on the first {size}; {args.runs} timed runs, {args.threads} thread(s);"
        f" sweep {sweep.relative_to(ROOT) if sweep.is_relative_to(ROOT) else sweep}")
    out(f"split: tuning fraction {args.tune_fraction:g}, seed {args.split_seed} (harness.report.paired.tune_split over the "
        f"first {size} queries, as `results --tune-fraction` above): {len(split.tune)} tuning queries choose each "
        f"configuration, {len(split.heldout)} held-out queries score it")
    out(f"intervals: recall@1 95 % Wilson; ratios 95 % paired percentile bootstrap over the held-out queries ({args.resamples} "
        f"resamples, seed {BOOTSTRAP_SEED})")
    out("q/s: shared 2-core VM, noisy (up to 2x between runs), whole-run figures over all the queries; distance counts are deterministic")
    # an entry that runs an algorithm under another name (potential-tree-greedy) joins that algorithm's series
    algorithm = entry_algorithms(sweep)
    renamed = [{**r, "algorithm": algorithm.get(str(r.get("algorithm")), r.get("algorithm"))} for r in records]
    report_dataset(renamed, answers_of(records, size), split.tune, split.heldout, args.resamples, out)
    out.write(args.out / f"potential_roles-{str(first['dataset']).replace('/', '_')}.txt", head(records, "potential_roles.py", argv))


def entry_algorithms(sweep: Path) -> dict[str, str]:
    """Each sweep entry's algorithm (its own name unless it names one with `algorithm:`)."""
    body = yaml.safe_load(sweep.read_text(encoding="utf-8")) or {}
    return {str(name): str((entry or {}).get("algorithm") or name) for name, entry in body.items()}


def answers_of(records: Sequence[Record], size: int) -> Answers:
    """Per-query scoring of `records` against the ground truth of the dataset file they name
    (`provenance.dataset_path`, the first `size` rows of its `neighbors` and `distances`)."""
    truths = {}
    for record in records:
        prov = record.get("provenance") or {}
        checksum, path = prov.get("dataset_sha256"), prov.get("dataset_path")
        if checksum and path and checksum not in truths:
            with h5py.File(path, "r") as f:
                truths[checksum] = Truth(np.asarray(f["neighbors"][:size]), np.asarray(f["distances"][:size], dtype=np.float64))
    return Answers(truths)


# --- role 3: potential_1's fixed-point update on the note's setting ------------------------------

class GapTrace(list):
    """`climb(trace=...)` appends every query's position after each iteration; keep only the
    distance to its true nearest neighbour (Q floats per step instead of Q x D)."""

    def __init__(self, target: Any) -> None:
        super().__init__()
        self.target = target

    def append(self, positions: Any) -> None:  # type: ignore[override]
        super().append((positions - self.target).norm(dim=1))


def fixed_point_study(args: argparse.Namespace, argv: Sequence[str], out: Output) -> None:
    ds, qs = note_data()
    qs = qs[: args.fixed_point_queries]
    nn = (qs.unsqueeze(-2) - ds).pow(2).sum(-1).argmin(-1)
    impl, field = get_potential("potential_1"), Field.of(ds, 256.0)
    hp = {"c": float(C), "eps": EPS, "clamp": 16.0}
    out(f"Role 3: the note's setting, {len(ds)} points uniform in [0,2]^64 (seed 100), the first {len(qs)} of its queries"
        f" uniform in [0,1]^64 (seed 1000), fp64, C = 1e8, eps = 0.5, raw units (scale 1)")
    out("converged = the position within 1e-3 of the query's true nearest neighbour (the note's measure); each rule stops a"
        " query when its step (two-step displacement) is under tol = 1e-5, as potential-1-note does")
    rules = (("fixed-point", None, args.steps), ("normalised", RATE, args.steps))
    rates: dict[str, list[float]] = {}
    for name, rate, steps in rules:
        rule = make_rule(name, impl, rate, power=1.1)
        trace = GapTrace(ds[nn])
        started = time.perf_counter()
        with torch.no_grad():
            result = climb(qs, rule, field_step(impl, field, hp), max_iters=steps, tol=1e-5, trace=trace)
        seconds = time.perf_counter() - started
        gaps = torch.stack(list(trace)) if len(trace) else torch.zeros((0, len(qs)), dtype=qs.dtype)
        rates[name] = [float((gap < 1e-3).double().mean()) for gap in gaps]
        snapped = (result.positions.unsqueeze(-2) - ds).pow(2).sum(-1).argmin(-1)
        it = result.iterations.double()
        first = [int(torch.nonzero(gaps[:, i] < 1e-3)[0]) + 1 if bool((gaps[:, i] < 1e-3).any()) else None for i in range(len(qs))]
        reached = [f for f in first if f is not None]
        recall = float((snapped == nn).double().mean())
        out(f"\n  {name}{f' (rate {rate:g}, power 1.1: the note rule)' if rate else ' (no step size)'}: {seconds:.2f} s, "
            f"iterations to stop mean {it.mean():.1f} / median {it.median():.0f} / max {it.max():.0f}; "
            f"converged {rates[name][-1] if rates[name] else 0:.1%} at the end; recall@1 after an exact snap {recall:.1%}")
        if reached:
            reached.sort()
            out(f"    steps to first converge (the {len(reached)} queries that do): median {reached[len(reached) // 2]}, max {reached[-1]}")
    everyone = note_data()[1]
    every_nn = (everyone.unsqueeze(-2) - ds).pow(2).sum(-1).argmin(-1)
    with torch.no_grad():
        whole = climb(everyone, make_rule("fixed-point", impl), field_step(impl, field, hp), max_iters=args.steps, tol=1e-5)
    whole_rate = float(((whole.positions - ds[every_nn]).norm(dim=1) < 1e-3).double().mean())
    out(f"\n  fixed-point on all {len(everyone)} of the note's queries: converged {whole_rate:.1%}, iterations to stop "
        f"mean {whole.iterations.double().mean():.2f} / max {whole.iterations.max()} (the note's rule, 4000 steps, all 1000"
        " queries: bench/results/seed_repro-potential_1-4000-cpu.txt)")
    out("\n  converged rate after each step count (a query that stopped keeps its position):")
    out(f"    {'steps':>6} " + " ".join(f"{name:>12}" for name, _, _ in rules))
    for step in CHECKPOINTS:
        cells = [f"{(r[min(step, len(r)) - 1] if r else 0.0):>12.1%}" for r in (rates[name] for name, _, _ in rules)]
        out(f"    {step:>6} " + " ".join(cells))
    target = rates["normalised"][-1] if rates["normalised"] else 0.0
    out("\n  steps to reach a converged rate (first step count at which the share reaches it):")
    for level in sorted({0.5, 0.9, 0.95, round(target, 4)}):
        cells = []
        for name, _, _ in rules:
            hit = next((i + 1 for i, r in enumerate(rates[name]) if r >= level - SLACK), None)
            cells.append(f"{hit if hit is not None else 'never':>12}")
        out(f"    rate >= {level:<7.2%} " + " ".join(cells) + ("   (the note rule's final rate)" if level == round(target, 4) else ""))
    out.write(args.out / "potential_roles-fixed-point.txt", head([], "potential_roles.py", argv, args.threads))


# --- the run ----------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    out = Output()
    with records_dir(args.results_dir, "potential-roles-") as root:
        for spec in dataset_specs(args.datasets):
            run_dataset(spec, args, argv, root, out)
    if not args.skip_fixed_point:
        torch.set_num_threads(args.threads)
        fixed_point_study(args, argv, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
