"""Do cheap (restricted) potential steps reach the Pareto front?

The sweep bench/cheap_steps.yaml: the restricted potentials (IVF-local, graph-local, 2-D planes),
the full Gaussian potential, brute force, FAISS IVF-Flat and HNSW, and hnswlib; the harness adds
every potential configuration's control (`ascent: none`: no climb, the snap's pool gathered at the
query). This script runs harness commands and adds the one table the harness lacks.

Query sets. Every method runs on the same first N test queries (default 200: all of siftsmall, the
first 200 of random-s-100). A method too slow for that carries `max_queries: M` in the yaml; it is
left out of the N-query run, and every method (it included) runs again on the first M queries,
so each table compares methods on one query set. Each query set is one harness run into its own
records directory (`<results-dir>/<dataset>/q<M>`). `--skip-slow` leaves the slow methods out.

Per dataset and query set, printed:
  * the run: `python -m harness --dataset D --sweep cheap_steps.yaml --algorithms ... --queries M ...`;
  * `python -m harness results --summary` on its records: per recall@1 threshold (0.9, 0.95, 0.99)
    and series (a control is its own series, e.g. "potential-gaussian-ivf [ascent=none]") the
    configuration with the best median q/s reaching it, q/s min / max over the timed runs, recall@1
    with its 95 % Wilson interval; then what the climb adds over the control, with the paired
    statistics (McNemar, bootstrap intervals);
  * what the summary lacks (`distance_lines`): per threshold and series, the distance computations
    per query of that fastest configuration and the fewest of any configuration of the series
    reaching the threshold; then the best potential method over the best baseline (median q/s,
    fewest distances).
Everything printed for a dataset goes to `<--out>/cheap_steps-<dataset>.txt` (default
bench/results/, overwritten), headed by the machine, libraries and commit the records name and the
command line. Records go to a temporary directory unless --results-dir keeps them (and reuses them).

    python bench/cheap_steps.py                                   # siftsmall + random-s-100, 200 queries, 3 runs
    python bench/cheap_steps.py --datasets siftsmall --queries 50 --runs 2 --skip-slow
    python bench/cheap_steps.py --results-dir results/cheap-steps # keep (and reuse) the records
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402
from drive import ALIASES, Output, dataset_specs, harness, head, records_dir  # noqa: E402

from harness.records import load_records  # noqa: E402
from harness.report.summary import is_ok, metric, series_name, summary_rows  # noqa: E402

SWEEP = Path(__file__).with_name("cheap_steps.yaml")
OUT = Path(__file__).with_name("results")
THRESHOLDS = (0.9, 0.95, 0.99)
BASELINES = ("bruteforce", "faiss-ivf", "faiss-hnsw", "hnswlib")
SLACK = 1e-9  # a recall stored as 0.8999999999 means 0.9

Record = Mapping[str, Any]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="siftsmall,random-s-100", help="comma list: siftsmall, random-s-100, a registry name or a path")
    parser.add_argument("--queries", type=int, default=200, help="first N test queries for every method (default 200)")
    parser.add_argument("--runs", type=int, default=3, help="timed repetitions per configuration (q/s min/median/max over them)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-slow", action="store_true", help="leave out the methods with max_queries in the sweep")
    parser.add_argument("--out", type=Path, default=OUT, help="where the text output goes (default bench/results)")
    parser.add_argument("--results-dir", type=Path, default=None, help="where records go (default: a temporary directory)")
    parser.add_argument("--data-dir", type=Path, default=None, help="dataset directory (default: the harness's)")
    parser.add_argument("--sweep", type=Path, default=SWEEP)
    return parser


def query_sets(limits: Mapping[str, int | None], n: int) -> list[tuple[int, list[str]]]:
    """(size, the sweep entries run on the first `size` queries), largest first: N with every entry
    not limited below it, then each smaller max_queries with every entry that allows it."""
    sizes = sorted({n} | {m for m in limits.values() if m is not None and m < n}, reverse=True)
    return [(size, [name for name, m in limits.items() if m is None or m >= size]) for size in sizes]


def sweep_limits(path: Path) -> dict[str, int | None]:
    """Each sweep entry's max_queries (None: every query); the harness checks the file itself."""
    body = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {str(name): (entry or {}).get("max_queries") for name, entry in body.items()}


# --- what `results --summary` lacks: distances of the chosen configurations -------------------------

def distance_lines(records: Sequence[Record]) -> list[str]:
    """Per threshold and series: the distances per query of the summary's choice (the fastest reaching
    the threshold, `harness.report.summary.summary_rows`) and the fewest of the series reaching it;
    then the best potential method (controls excluded) over the best baseline."""
    lines = ["Distance computations per query of the summary's choices (the fastest reaching each threshold) "
             "and the fewest of any configuration of the series reaching it"]
    ok = [r for r in records if is_ok(r)]
    for threshold in THRESHOLDS:
        lines.append(f"  recall@1 >= {threshold}")
        lines.append(f"    {'series':38} {'dist/query':>10} {'fewest d/q':>10}  configuration")
        fastest: dict[str, tuple[float, str]] = {}
        fewest: dict[str, float] = {}
        for row in summary_rows(ok, (threshold,)):
            name = str(row["series"])
            reaching = [r for r in ok if series_name(r) == name and metric(r, "recall_at_1") >= threshold - SLACK]
            chosen = next((r for r in reaching if r.get("label") == row["label"]), None)
            comps = [metric(r, "dist_comps_mean") for r in reaching if math.isfinite(metric(r, "dist_comps_mean"))]
            fewest[name] = min(comps, default=math.nan)
            if chosen is None:
                lines.append(f"    {name:38} {'not reached':>10}")
                continue
            fastest[name] = (metric(chosen, "qps"), str(chosen.get("algorithm")))
            lines.append(f"    {name:38} {_fmt(metric(chosen, 'dist_comps_mean')):>10} {_fmt(fewest[name]):>10}  {row['label']}")
        lines.append("    " + ratio_text(ok, fastest, fewest))
    return lines


def ratio_text(records: Sequence[Record], fastest: Mapping[str, tuple[float, str]], fewest: Mapping[str, float]) -> str:
    """Best potential method over best baseline: median q/s, and fewest distances per query."""
    methods = {series_name(r) for r in records if r.get("role") == "method"}
    baselines = {series_name(r) for r in records if r.get("algorithm") in BASELINES}
    pot = {n: v for n, v in fastest.items() if n in methods}
    base = {n: v for n, v in fastest.items() if n in baselines}
    if not pot or not base:
        return "ratio best potential / best baseline: - (a side never reaches this recall)"
    p_q, b_q = max(pot, key=lambda n: pot[n][0]), max(base, key=lambda n: base[n][0])
    text = f"q/s ratio {pot[p_q][0] / base[b_q][0]:.3f} ({p_q} / {b_q})"
    p_c = {n: fewest[n] for n in pot if math.isfinite(fewest.get(n, math.nan))}
    b_c = {n: fewest[n] for n in base if math.isfinite(fewest.get(n, math.nan))}
    if p_c and b_c:
        p, b = min(p_c, key=p_c.get), min(b_c, key=b_c.get)
        text += f"; dist-comps ratio {p_c[p] / b_c[b]:.2f} ({p} / {b})"
    return text


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, ",.0f")


# --- the run ------------------------------------------------------------------------------------------

def run_dataset(spec: str, args: argparse.Namespace, argv: Sequence[str], root: Path, out: Output) -> None:
    """Every query set of one dataset: its harness run, `results --summary`, the distance table."""
    limits = sweep_limits(args.sweep)
    if args.skip_slow:
        limits = {name: m for name, m in limits.items() if m is None}
    every: list[dict[str, Any]] = []
    for size, names in query_sets(limits, args.queries):
        where = root / spec.replace("/", "_") / f"q{size}"
        left_out = [n for n in limits if n not in names]
        out(f"\n== the first {size} test queries, every method" + (f" except {', '.join(left_out)} (too slow: on a subset below)"
                                                                  if left_out else "")
            + ("" if size == args.queries else "; every method rerun on this subset"))
        harness(["--dataset", ALIASES.get(spec, spec), "--sweep", args.sweep.resolve(), "--algorithms", ",".join(names),
                 "--queries", size, "--runs", args.runs, "--threads", args.threads, "--results-dir", where, "--no-plots",
                 "--workers", "0", "--no-progress", *(["--data-dir", args.data_dir] if args.data_dir else [])], out)
        harness(["results", "--summary", "--results-dir", where, *(["--data-dir", args.data_dir] if args.data_dir else [])], out)
        records = load_records(where)
        out()
        for line in distance_lines(records):
            out(line)
        every += records
    name = str(every[0].get("dataset")) if every else spec
    out.write(args.out / f"cheap_steps-{name.replace('/', '_')}.txt", head(every, "cheap_steps.py", argv))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    out = Output()
    with records_dir(args.results_dir, "cheap-steps-") as root:
        for spec in dataset_specs(args.datasets):
            run_dataset(spec, args, argv, root, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
