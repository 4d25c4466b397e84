"""Reproduce the seed note's experiment, through the note's own code and through this package.

The note's setting: 1000 points uniform in [0,2]^64 (seed 100), 1000 queries uniform in
[0,1]^64 (seed 1000), fp64, C = 1e8, EPS = 0.5, step 5e-4 * g / |g|^1.1, 4000 steps. Both
paths run on the same device from the same tensors; for each, the script prints the note's
rate (converged position within 1e-3 of the true NN), recall@1 after an exact snap, and time.

This package runs through its own API (potential, `climb`, `snap`) in raw units (scale 1),
with `--tol 0` (default) taking every step as the note does; `--tol 1e-6` lets each query stop
once it circles its peak. On a CPU use fewer steps (`--steps 200`); the note's table in
design.md was measured on an H100 with 4000 steps.

    python bench/seed_repro.py --device cuda                 # the note's full setting
    python bench/seed_repro.py --device cuda --kernel compiled   # torch.compile of the block (eager if it fails)
    python bench/seed_repro.py --device cpu --steps 200 --queries 100   # a few minutes, 2 cores
    python bench/seed_repro.py --device cpu --potential potential_1 --skip-note-code \
        --out bench/results/seed_repro-potential_1-4000-cpu.txt   # this package alone, 4000 steps: minutes

On a CPU the note's code needs seconds per step at 1000 queries (hours for 4000 steps);
`--skip-note-code` runs this package's climb alone, the same rule from the same tensors. `--out`
writes what is printed to a file too, after the date, the machine, the commit and the command.

Target: on one GPU at 4000 steps, this implementation >= 30x faster than the note's
code on the same GPU, with the same rate within one percentage point. Not verified on a GPU in
this repository yet; the CPU figures only show that both paths agree. Device timings synchronise
before and after each path, so queued CUDA work is counted.
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from algorithms import tune_malloc  # noqa: E402
from algorithms.potential import Field, climb, field_step, get_potential, make_rule  # noqa: E402
from algorithms.potential.note_reference import EPS, RATE, C, note_ascent, note_data  # noqa: E402
from algorithms.potential.potentials import nearest_candidates  # noqa: E402


def _timed(device: str, fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def _ours(
    ds: torch.Tensor, qs: torch.Tensor, potential: str, steps: int, tol: float, memory_mb: float, kernel: str = "matmul"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Climb with this package's potential and normalised rule; returns (positions, snapped ids)."""
    impl = get_potential(potential)
    field = Field.of(ds, memory_mb, kernel=kernel)
    hp = {"c": float(C), "eps": EPS, "clamp": 16.0}
    rule = make_rule("normalised", impl, RATE, power=1.1)
    with torch.no_grad():
        result = climb(qs, rule, field_step(impl, field, hp), max_iters=steps, tol=tol)
        ids = nearest_candidates(result.positions, field, 1)
    return result.positions, ids[:, 0]


_FILE: list = []  # the --out file while it is open


def _out(text: str) -> None:
    """Print, and write to the --out file when one is open."""
    print(text, flush=True)
    for file in _FILE:
        file.write(text + "\n")
        file.flush()


def _preamble(argv: list[str]) -> list[str]:
    """The date, the machine, the libraries, the commit and the exact command line."""
    from harness.run import provenance

    versions = provenance.library_versions()
    libs = ", ".join(f"{n} {versions[n]}" for n in ("torch", "numpy") if n in versions)
    commit, dirty = provenance.git_state()
    return [
        f"date: {provenance.now_iso()}",
        f"machine: {provenance.cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads; {platform.platform()}",
        f"python {platform.python_version()}; {libs}; git: {commit or '-'}{' (dirty)' if dirty else ''}",
        "command: " + shlex.join(["python", "bench/seed_repro.py", *argv]),
        "",
    ]


def _report(label: str, ds: torch.Tensor, nn: torch.Tensor, positions: torch.Tensor, ids: torch.Tensor, seconds: float) -> None:
    within = (ds[nn] - positions).norm(dim=1) < 1e-3
    rate = float(within.double().mean())
    recall = float((ids == nn).double().mean())
    _out(f"  {label:<22} rate(<1e-3 of NN) = {rate:6.1%} ({int(within.sum())} of {len(nn)})   "
         f"recall@1 after snap = {recall:6.1%}   time = {seconds:8.2f} s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--potential", choices=("potential_1", "potential_2", "both"), default="both")
    parser.add_argument("--tol", type=float, default=0.0, help="per-query stop for this package (raw units)")
    parser.add_argument("--memory-mb", type=float, default=256.0)
    parser.add_argument("--queries", type=int, default=1000, help="first Q of the note's 1000 queries (CPU: 100)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--kernel", choices=("matmul", "compiled"), default="matmul",
                        help="this package's evaluation kernel (compiled: torch.compile, warmed up once untimed)")
    parser.add_argument("--skip-note-code", action="store_true",
                        help="run this package's climb only (the note's code takes hours for 4000 steps on a CPU)")
    parser.add_argument("--out", type=Path, default=None, help="also write the output to this file (e.g. under bench/results/)")
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch sees no CUDA GPU")
    if args.threads:
        torch.set_num_threads(args.threads)
    ds, qs = note_data(device=args.device)
    qs = qs[: args.queries]
    nn = (qs.unsqueeze(-2) - ds).pow(2).sum(-1).argmin(-1)
    potentials = ("potential_1", "potential_2") if args.potential == "both" else (args.potential,)
    name = torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else "cpu"
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        _FILE.append(args.out.open("w", encoding="utf-8"))
        _FILE[0].write("\n".join(_preamble(sys.argv[1:])) + "\n")
    _out(f"device={args.device} ({name}) steps={args.steps} S={len(ds)} Q={len(qs)} D={ds.shape[1]} fp64 "
         f"threads={torch.get_num_threads()} kernel={args.kernel} tol={args.tol:g}")
    _out(f"allocator: {tune_malloc()} (both paths run in this process; GPNN_MALLOC=default for glibc's defaults)")
    _out("rate = the note's measure: the final position within 1e-3 of the query's true nearest neighbour")
    for potential in potentials:
        _out(potential)
        t_ref = None
        if not args.skip_note_code:
            ref, t_ref = _timed(args.device, lambda: note_ascent(ds, qs, args.steps, potential))
            ref_ids = (ref.unsqueeze(-2) - ds).pow(2).sum(-1).argmin(-1)
            _report("note's code", ds, nn, ref, ref_ids, t_ref)
        if args.kernel == "compiled":  # compile once outside the timing, as a long run amortises it
            _ours(ds, qs, potential, 2, args.tol, args.memory_mb, args.kernel)
        (pos, ids), t_ours = _timed(
            args.device, lambda: _ours(ds, qs, potential, args.steps, args.tol, args.memory_mb, args.kernel)
        )
        _report("this implementation", ds, nn, pos, ids, t_ours)
        if t_ref is not None:
            _out(f"  speed-up {t_ref / t_ours:.1f}x")
    for file in _FILE:
        file.close()
        print(f"(written to {args.out})")


if __name__ == "__main__":
    main()
