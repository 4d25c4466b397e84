"""Every GPU measurement the harness makes, in one command that fits a GPU window of 10 minutes.

GPU time comes in short windows, so this is the list of what to run the moment one is there,
each step the project's own command with its own time limit (all within --total-s):

    cuda-tests     python -m pytest -q -m cuda: every CUDA test (potentials, kernels, FAISS GPU)
    step-cost      bench/step_cost.py: one Gaussian step against one brute-force pass on the GPU
    seed-repro     bench/seed_repro.py: the note's experiment, the note's code against this package
    dataset        bench/scale.py --plan-only: a 1M x 128 SIFT-like set (exact ground truth) and the plan
    sweep          bench/scale.py: the default sweep on it, the potentials on CUDA, under --budget
    batch-size     the batch-size axis (--batch-size 1,100,1000) on potentials and baselines
    faiss-gpu      faiss-gpu-flat and faiss-gpu-ivf, when the installed faiss has GPU support

The result file, bench/results/gpu-<machine>-<date>.txt (--out: another folder), holds the
machine (GPU, CUDA, torch, faiss), then for each step its command, limit, status and wall
time, and its output (the last lines); it is rewritten after every step, so a window that closes
early still leaves what was done. A failed or timed-out step is recorded and the suite goes on;
the exit code is 1 if any step failed. `--device cpu --small` runs the same steps on tiny sizes
on the CPU (what CI runs, to prove the script itself works), into gpu-cpu-small-<date>.txt.

    python bench/gpu_suite.py                                 # on one GPU: about 10 minutes
    python bench/gpu_suite.py --only sweep,faiss-gpu          # some steps (the dataset step makes the data)
    python bench/gpu_suite.py --device cpu --small --out /tmp # CI's check of the script
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable
TAIL_LINES = 300  # output lines of a step kept in the result file


@dataclass
class Step:
    name: str
    argv: list[str]
    limit_s: float
    skip: str | None = None  # why the step does not run here
    # filled in when it ran
    status: str = "not run"
    wall_s: float = 0.0
    output: list[str] = field(default_factory=list)


def _bench_module(name: str) -> Any:
    """A script of bench/ as a module (not on sys.path: its names would shadow others)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def faiss_gpu_problem() -> str | None:
    from algorithms._gpu_support import gpu_support_problem

    return gpu_support_problem()


def steps(args: argparse.Namespace, scratch: Path) -> list[Step]:
    """The suite: on the GPU at full size, or on tiny sizes (--small) wherever --device says."""
    scale = _bench_module("scale")  # bench/scale.py: where it keeps the dataset it generates
    dev, small = args.device, args.small
    n, queries, dim = (2000, 50, 16) if small else (1_000_000, 10_000, 128)
    data = scale.dataset_path(scratch / "scale", n, dim, queries, 0)
    scale_argv = [PY, "bench/scale.py", "--n", str(n), "--queries", str(queries), "--dim", str(dim), "--device", dev,
                  "--parallel", "0" if small else "1", "--scratch", str(scratch / "scale"), "--out", str(scratch / "scale-out")]
    harness = [PY, "-m", "harness", "--dataset", str(data), "--device", dev, "--no-plots", "--no-progress",
               "--results-dir", str(scratch / "results")] + (["--workers", "0", "--runs", "1"] if small else [])
    potentials_and_baselines = "potential-gaussian,potential-gaussian-ivf,bruteforce,faiss-ivf"
    out: list[Step] = [
        Step("cuda-tests", [PY, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"], 90),
        Step("step-cost", [PY, "bench/step_cost.py", "--device", dev, "--out", "-"]
             + (["--sizes", "2000", "--queries", "50", "--repeats", "1", "--warmup", "0", "--dtype", "none",
                 "--no-potential1", "--track-m", "0", "--threads", "1"] if small else []), 60),
        Step("seed-repro", [PY, "bench/seed_repro.py", "--device", dev]
             + (["--steps", "5", "--queries", "20", "--threads", "1"] if small else []), 90),
        Step("dataset", [*scale_argv, "--budget", "20s" if small else "100s", "--plan-only"], 80),
        Step("sweep", [*scale_argv, "--budget", "20s" if small else "100s"], 150),
    ]
    out.append(Step("batch-size", [*harness, "--algorithms", potentials_and_baselines, "--batch-size", "1,100,1000",
                                   "--budget", "10s" if small else "30s"], 60))
    out.append(Step("faiss-gpu", [*harness, "--algorithms", "faiss-gpu-flat,faiss-gpu-ivf", "--budget", "10s" if small else "25s"],
                    40, skip=faiss_gpu_problem()))
    return out


def run_step(step: Step, limit_s: float, log: Path) -> None:
    """Run one step in its own process group, killed (the group) after `limit_s`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.monotonic()
    with log.open("w") as sink:
        process = subprocess.Popen(step.argv, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = process.wait(timeout=limit_s)
            step.status = "passed" if code == 0 else f"FAILED (exit {code})"
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            step.status = f"TIMED OUT after {limit_s:.0f} s"
    step.wall_s = time.monotonic() - start
    lines = log.read_text(errors="replace").splitlines()
    kept = lines[-TAIL_LINES:]
    step.output = ([f"... ({len(lines) - len(kept)} earlier lines left out)"] if len(lines) > len(kept) else []) + kept


def machine_lines(args: argparse.Namespace) -> list[str]:
    import faiss
    import torch

    from harness.run import provenance

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none visible to torch"
    commit, dirty = provenance.git_state()
    return [
        f"date: {provenance.now_iso()}",
        f"machine: {platform.node()}; {provenance.cpu_model()}, {os.cpu_count()} cores; {platform.platform()}",
        f"GPU: {gpu}; CUDA (torch's build): {torch.version.cuda or 'none'}",
        f"python {platform.python_version()}; torch {torch.__version__}; faiss {faiss.__version__} "
        f"(GPU support: {faiss_gpu_problem() or 'yes'})",
        f"git: {commit or '-'}{' (dirty)' if dirty else ''}",
        "command: " + shlex.join(["python", "bench/gpu_suite.py", *args.argv]),
    ]


def shown(argv: list[str]) -> str:
    """A step's command as a reader would type it."""
    return shlex.join(["python", *argv[1:]] if argv[0] == PY else argv)


def write_result(path: Path, header: list[str], plan: list[Step]) -> None:
    lines = [*header, "", f"{'step':<12} {'status':<26} {'wall':>8}"]
    lines += [f"{s.name:<12} {s.status:<26} {s.wall_s:>7.1f}s" for s in plan]
    for s in plan:
        lines += ["", f"=== {s.name}: {s.status}, {s.wall_s:.1f} s", "command: " + shown(s.argv), *s.output]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="where the steps run (default cuda)")
    parser.add_argument("--small", action="store_true", help="tiny sizes (CI's check of the script; with --device cpu)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="folder of the result file (default bench/results)")
    parser.add_argument("--scratch", type=Path, default=None,
                        help="folder for the generated dataset, records and logs (default $TMPDIR/gpnn-gpu-suite-<machine>)")
    parser.add_argument("--only", default=None, help="comma-separated step names to run (default: all)")
    parser.add_argument("--total-s", type=float, default=570.0, help="time for all steps together; each step gets "
                        "at most its own limit and what is left (default 570)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: torch sees no CUDA GPU here\n  hint: on a CPU, check the script with --device cpu --small",
              file=sys.stderr)
        return 2
    machine = "cpu-small" if args.device == "cpu" and args.small else re.sub(
        r"[^a-z0-9]+", "-", (torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu").lower()).strip("-")
    machine += "-small" if args.small and machine != "cpu-small" else ""
    scratch = args.scratch or Path(os.environ.get("TMPDIR", "/tmp")) / f"gpnn-gpu-suite-{machine}"
    scratch.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(scratch / "results", ignore_errors=True)  # measured afresh: records of an earlier try are not reused
    plan = steps(args, scratch)
    if args.only:
        wanted = args.only.split(",")
        unknown = [w for w in wanted if w not in {s.name for s in plan}]
        if unknown:
            print(f"error: --only {args.only}: no step {', '.join(unknown)}\n  hint: steps: {', '.join(s.name for s in plan)}",
                  file=sys.stderr)
            return 2
        plan = [s for s in plan if s.name in wanted]
    part = f"-{'+'.join(args.only.split(','))}" if args.only else ""  # a partial run keeps its own file
    result = args.out / f"gpu-{machine}-{datetime.date.today().isoformat()}{part}.txt"
    header = machine_lines(args)
    deadline = time.monotonic() + args.total_s
    for step in plan:
        left = deadline - time.monotonic()
        if step.skip:
            step.status = "skipped"
            step.output = [f"skipped: {step.skip}"]
        elif left < 5:
            step.status = "FAILED (no time left)"
            step.output = [f"not started: --total-s {args.total_s:.0f} was spent by the steps before"]
        else:
            print(f"[{step.name}] {shown(step.argv)}", flush=True)
            run_step(step, min(step.limit_s, left), scratch / f"{step.name}.log")
        print(f"[{step.name}] {step.status} ({step.wall_s:.1f} s)", flush=True)
        write_result(result, header, plan)
    failed = [s.name for s in plan if s.status.startswith(("FAILED", "TIMED OUT"))]
    print(f"{len(plan) - len(failed)} of {len(plan)} steps passed or skipped; written: {result}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
