"""Issue 17: is there a role in which the potential adds something? Three tries, each beside its control.

1. `potential-probe`: IVF probing that stops when the Gaussian potential's estimate of the mass in
   the unprobed cells falls below the probed mass; control `stop=geometric` (the same loop, same
   bound distances, no potential), and faiss-ivf at fixed nprobe on the same nlist (same cells).
2. `potential-tree`: coarse-to-fine climbs down a k-means tree; control `descent=greedy` (the same
   tree searched by centroid distance).
3. potential_1's fixed-point (weighted-mean) update against the note's normalised rule, on the
   note's own setting (algorithms/potential/note_reference.py: 1000 points in [0,2]^64, fp64).

Roles 1 and 2 run through the harness itself, in-process, on the sweeps bench/potential_roles-<dataset>.yaml
(siftsmall, random-s-100; another dataset takes siftsmall's), with faiss-hnsw and bruteforce; every method on
the same query set of a dataset (siftsmall: all 200; random-s-100: the first 1000). Printed per
dataset, from the records alone:
  * per recall@1 threshold (0.9, 0.95, 0.99) and per series (a control is its own series; IVF
    series carry their nlist): the configuration with the FEWEST distance computations per query
    reaching it (no interpolation), its recall@1 with a 95 % Wilson interval, its q/s min / median /
    max over the timed runs, and the best median q/s of any configuration of the series reaching it;
  * role 1 per nlist: distances of potential-probe, its geometric control and faiss-ivf (the cheapest
    configuration reaching the threshold, and interpolated linearly in recall between the two
    configurations of the series' Pareto front that bracket it, which takes the sweep grids' steps
    out of the comparison), and the moonshot's ratios (faiss-ivf / probe >= 1.5, geometric / probe > 1,
    q/s probe / faiss-ivf >= 0.5);
  * role 2: the tree's climb against its greedy control and faiss-ivf;
  * every method configuration beside its control (recall gain, distance ratio).
Role 3 prints the note's converged rate (landing within 1e-3 of the true NN) step by step for both
rules on the same queries, and the steps each needs to reach a rate.

Distance counts are deterministic; q/s are not: this runs on a shared 2-core VM whose q/s vary by up
to 2x between runs (hence min / median / max). Output goes to bench/results/potential_roles-<dataset>.txt
and bench/results/potential_roles-fixed-point.txt (overwritten each run).

    python bench/potential_roles.py                              # everything (~10 min on 2 loaded cores)
    python bench/potential_roles.py --datasets siftsmall --runs 2 --skip-fixed-point
    python bench/potential_roles.py --datasets none              # role 3 only
"""
from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cheap_steps import (  # noqa: E402
    ALIASES, SLACK, THRESHOLDS, Tee, _fmt, control_table, preamble, recall_cell, run_pass, session, spread_cell,
)

SWEEPS = {"siftsmall-128-euclidean": Path(__file__).with_name("potential_roles-siftsmall.yaml"),
          "random-s-100-euclidean": Path(__file__).with_name("potential_roles-random-s-100.yaml")}
OUT = Path(__file__).with_name("results")
QUERIES = {"siftsmall-128-euclidean": 200, "random-s-100-euclidean": 1000}
CHECKPOINTS = (1, 2, 3, 4, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 3000, 4000)

Record = Mapping[str, Any]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="siftsmall,random-s-100", help="comma list (siftsmall, random-s-100, a name or path); 'none' for none")
    parser.add_argument("--queries", type=int, default=None, help="first N test queries (default: siftsmall 200, random-s-100 1000)")
    parser.add_argument("--runs", type=int, default=3, help="timed repetitions per configuration")
    parser.add_argument("--threads", type=int, default=1, help="threads per method (default 1: the VM's 2 cores are shared)")
    parser.add_argument("--skip-fixed-point", action="store_true", help="leave role 3 out")
    parser.add_argument("--fixed-point-queries", type=int, default=100, help="queries of the note's setting for role 3 (the note: 1000)")
    parser.add_argument("--steps", type=int, default=4000, help="role 3: the note's steps")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--results-dir", type=Path, default=None, help="keep (and reuse) the records here")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--sweep", type=Path, default=None, help="one sweep file for every dataset (default: per dataset)")
    return parser.parse_args(argv)


# --- roles 1 and 2: the tables -----------------------------------------------------------------

def series_key(record: Record) -> str:
    """The harness's series name, with nlist for IVF-built methods (role 1 compares on the same nlist)."""
    from harness.report.summary import series_name

    nlist = (record.get("build_params") or {}).get("nlist")
    return series_name(record) + (f" nlist={nlist}" if nlist is not None else "")


def reaching(records: Sequence[Record], threshold: float) -> dict[str, list[Record]]:
    """Per series, the successful records whose recall@1 reaches `threshold`."""
    from harness.report.summary import is_ok, metric

    out: dict[str, list[Record]] = {}
    for record in records:
        if is_ok(record) and metric(record, "recall_at_1") >= threshold - SLACK:
            out.setdefault(series_key(record), []).append(record)
    return out


def cheapest(records: Sequence[Record]) -> Record:
    """The record with the fewest distance computations per query (ties: higher recall, then label)."""
    from harness.report.summary import metric

    return min(records, key=lambda r: (metric(r, "dist_comps_mean"), -metric(r, "recall_at_1"), str(r.get("label"))))


def fastest(records: Sequence[Record]) -> Record:
    from harness.report.summary import metric

    return max(records, key=lambda r: (metric(r, "qps"), metric(r, "recall_at_1")))


def threshold_lines(records: Sequence[Record], order: Sequence[str], threshold: float) -> list[str]:
    from harness.report.summary import metric

    hits = reaching(records, threshold)

    def row(name: str) -> str:
        if name not in hits:
            return f"    {name:44} {'not reached':>23}"
        record = cheapest(hits[name])
        return (f"    {name:44} {recall_cell(record):>23} {_fmt(metric(record, 'dist_comps_mean')):>10} "
                f"{spread_cell(record):>28} {_fmt(metric(fastest(hits[name]), 'qps')):>9}  {record.get('label')}")

    head = [f"  recall@1 >= {threshold}: per series the configuration with the fewest distances/query reaching it",
            f"    {'series':44} {'recall@1 [95% Wilson]':>23} {'dist/query':>10} {'q/s min / median / max':>28} "
            f"{'best q/s':>9}  configuration"]
    return head + [row(name) for name in order]


def interpolated(records: Sequence[Record], threshold: float) -> float | None:
    """Distances/query at `threshold`, linear in recall between the two configurations of the series'
    Pareto front (fewer distances, higher recall) that bracket it; None when none reaches it."""
    from harness.report.summary import is_ok, metric

    points = sorted((metric(r, "dist_comps_mean"), metric(r, "recall_at_1")) for r in records if is_ok(r))
    front: list[tuple[float, float]] = []
    for cost, recall in points:
        if not front or recall > front[-1][1]:
            front.append((cost, recall))
    for (c0, r0), (c1, r1) in zip([(0.0, -1.0)] + front, front):
        if r1 >= threshold - SLACK:
            return c1 if r0 < 0 or r1 == r0 else c0 + (c1 - c0) * (threshold - r0) / (r1 - r0)
    return None


def ratio(a: float | None, b: float | None, spec: str = ".2f") -> str:
    return "-" if a is None or b is None or not b or not math.isfinite(a) or not math.isfinite(b) else format(a / b, spec)


def role_one_lines(records: Sequence[Record]) -> list[str]:
    """Per nlist and threshold: probe, geometric control, faiss-ivf; the moonshot's three ratios."""
    from harness.report.summary import metric

    nlists = sorted({(r.get("build_params") or {}).get("nlist") for r in records if r.get("algorithm") == "potential-probe"})
    lines = ["Role 1, potential-probe against its geometric control and faiss-ivf on the same nlist (same cells).",
             "  moonshot: faiss-ivf d/q / probe d/q >= 1.5 at 0.95 and 0.99; geometric d/q / probe d/q > 1;"
             " q/s probe / faiss-ivf >= 0.5 (best median q/s of each reaching the threshold)",
             "  d/q: the cheapest configuration reaching the threshold; (interp.): interpolated on the series' Pareto front",
             f"    {'nlist':>5} {'recall@1':>8} {'probe d/q':>10} {'geometric':>10} {'faiss-ivf':>10} "
             f"{'ivf/probe':>9} {'geo/probe':>9} {'(interp.) probe':>15} {'geometric':>9} {'faiss-ivf':>9} "
             f"{'ivf/probe':>9} {'geo/probe':>9} {'probe q/s':>9} {'ivf q/s':>9} {'q/s ratio':>9}"]
    for nlist in nlists:
        names = {"probe": f"potential-probe nlist={nlist}", "geo": f"potential-probe [stop=geometric] nlist={nlist}",
                 "ivf": f"faiss-ivf nlist={nlist}"}
        series = {k: [r for r in records if series_key(r) == n] for k, n in names.items()}
        for threshold in THRESHOLDS:
            hits = reaching(records, threshold)
            dist = {k: metric(cheapest(hits[n]), "dist_comps_mean") if n in hits else None for k, n in names.items()}
            inter = {k: interpolated(rs, threshold) for k, rs in series.items()}
            qps = {k: metric(fastest(hits[n]), "qps") if n in hits else None for k, n in names.items()}
            lines.append(f"    {nlist:>5} {threshold:>8} {_fmt(dist['probe']):>10} {_fmt(dist['geo']):>10} {_fmt(dist['ivf']):>10} "
                         f"{ratio(dist['ivf'], dist['probe']):>9} {ratio(dist['geo'], dist['probe']):>9} "
                         f"{_fmt(inter['probe']):>15} {_fmt(inter['geo']):>9} {_fmt(inter['ivf']):>9} "
                         f"{ratio(inter['ivf'], inter['probe']):>9} {ratio(inter['geo'], inter['probe']):>9} "
                         f"{_fmt(qps['probe']):>9} {_fmt(qps['ivf']):>9} {ratio(qps['probe'], qps['ivf']):>9}")
    return lines


def role_two_lines(records: Sequence[Record]) -> list[str]:
    """Per threshold: the tree's climb, its greedy control, and the cheapest faiss-ivf of any nlist."""
    from harness.report.summary import metric

    lines = ["Role 2, potential-tree (coarse-to-fine climb) against its greedy control and faiss-ivf (cheapest nlist):",
             f"    {'recall@1':>8} {'climb d/q':>10} {'greedy d/q':>10} {'faiss-ivf d/q':>13} {'climb/greedy':>12} "
             f"{'climb/ivf':>9} {'climb q/s':>9} {'greedy q/s':>10}"]
    for threshold in THRESHOLDS:
        hits = reaching(records, threshold)
        climb = hits.get("potential-tree", [])
        greedy = hits.get("potential-tree [descent=greedy]", [])
        ivf = [r for name, rs in hits.items() if name.startswith("faiss-ivf ") for r in rs]
        d = [metric(cheapest(rs), "dist_comps_mean") if rs else None for rs in (climb, greedy, ivf)]
        q = [metric(fastest(rs), "qps") if rs else None for rs in (climb, greedy)]
        lines.append(f"    {threshold:>8} {_fmt(d[0]):>10} {_fmt(d[1]):>10} {_fmt(d[2]):>13} {ratio(d[0], d[1]):>12} "
                     f"{ratio(d[0], d[2]):>9} {_fmt(q[0]):>9} {_fmt(q[1]):>10}")
    return lines


def series_order(records: Sequence[Record]) -> list[str]:
    from harness.report.summary import is_ok

    rank = {"potential-probe": 0, "faiss-ivf": 1, "potential-tree": 2, "faiss-hnsw": 3, "bruteforce": 4}
    names = {series_key(r): (rank.get(str(r.get("algorithm")), 9), r.get("role") == "control", series_key(r))
             for r in records if is_ok(r)}
    return sorted(names, key=lambda n: names[n])


def report_dataset(records: Sequence[Record], out: Tee) -> None:
    from harness.report.summary import control_rows, is_ok

    failed = [r for r in records if not is_ok(r)]
    if failed:
        out(f"   {len(failed)} configuration(s) failed: " + ", ".join(sorted({str(r.get('algorithm')) for r in failed})))
    order = series_order(records)
    for threshold in THRESHOLDS:
        for line in threshold_lines(records, order, threshold):
            out(line)
    out()
    for line in role_one_lines(records):
        out(line)
    out()
    for line in role_two_lines(records):
        out(line)
    rows = control_rows(records)
    if rows:
        out()
        out("Each configuration beside its control (potential-probe: stop=geometric, same alpha; potential-tree: "
            "descent=greedy, same widths);")
        out("the table's own heading names the climb's control (ascent=none); here the control is the one just named.")
        out(control_table(rows).rstrip("\n"))


def run_dataset(spec: str, args: argparse.Namespace, results_dir: Path, head: list[str], out: Tee) -> None:
    from harness.data.loader import open_dataset
    from harness.records import load_records, safe_component
    from harness.run.sweeps import read_sweep_file

    dataset = open_dataset(ALIASES.get(spec, spec), args.data_dir, progress=False)
    sweep = args.sweep or SWEEPS.get(dataset.name, SWEEPS["siftsmall-128-euclidean"])
    mine = [e for e in read_sweep_file(sweep) if e.datasets is None or dataset.name in e.datasets]
    size = min(args.queries or QUERIES.get(dataset.name, 200), dataset.n_test)
    path = args.out / f"potential_roles-{safe_component(dataset.name)}.txt"
    out.open(path, head)
    out(f"{dataset.name}: {dataset.n_train} x {dataset.dimension}, {dataset.n_test} test queries; every method on the "
        f"first {size}; {args.runs} timed runs, {args.threads} thread(s); sweep {sweep.relative_to(ROOT) if sweep.is_relative_to(ROOT) else sweep}")
    out("q/s: shared 2-core VM, noisy (up to 2x between runs); distance counts are deterministic")
    started = time.perf_counter()
    run_pass(dataset, mine, size, args, results_dir, out)
    out(f"\n{dataset.name}: sweep took {time.perf_counter() - started:.0f} s\n")
    records = [r for r in load_records(results_dir, dataset.name) if r.get("n_queries") == size]
    report_dataset(records, out)
    out.finish(path)


# --- role 3: potential_1's fixed-point update on the note's setting ------------------------------

class GapTrace(list):
    """`climb(trace=...)` appends every query's position after each iteration; keep only the
    distance to its true nearest neighbour (Q floats per step instead of Q x D)."""

    def __init__(self, target: Any) -> None:
        super().__init__()
        self.target = target

    def append(self, positions: Any) -> None:  # type: ignore[override]
        super().append((positions - self.target).norm(dim=1))


def fixed_point_study(args: argparse.Namespace, head: list[str], out: Tee) -> None:
    import torch

    from algorithms.potential import Field, climb, field_step, get_potential, make_rule
    from algorithms.potential.note_reference import EPS, RATE, C, note_data

    path = args.out / "potential_roles-fixed-point.txt"
    out.open(path, head)
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
        f"mean {whole.iterations.double().mean():.2f} / max {whole.iterations.max()} (the note's code, 4000 steps on an H100:"
        " 98.7 %, design.md)")
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
    out.finish(path)


# --- the run ----------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    import torch

    from harness.run.threads import set_threads

    set_threads(args.threads)
    torch.set_num_threads(args.threads)
    head = preamble(args, argv)
    head[-1] = "command: " + shlex.join(["python", "bench/potential_roles.py", *argv])
    print("\n".join(head) + "\n", flush=True)
    with session(args.results_dir, "potential-roles-") as (results_dir, out):
        for spec in [s.strip() for s in args.datasets.split(",") if s.strip() and s.strip() != "none"]:
            run_dataset(spec, args, results_dir, head, out)
        if not args.skip_fixed_point:
            fixed_point_study(args, head, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
