"""The cost model: how long a build configuration will take, estimated before it runs.

Why: on a dataset of sift-128's size a default sweep takes hours, and a slow method on all
10,000 queries alone can take more. The plan (`harness.plan.budget`) sizes each configuration's
query subset from these estimates and the progress bar counts estimated work, not builds.

The model, kept simple on purpose:

    configuration = start-up + build + sum over its query configurations of
                    (overhead + (runs x n + warm-up) x seconds per query)

Each adapter describes its work (`algorithms.base.Cost`: distance computations by kind, per
query and for the build, from its parameters and the dataset's size; e.g. IVF scans
nprobe / nlist x N distances per query, HNSW about 1.1 M (ef + 2 ln N)). Adapters that do not
describe themselves are charged one brute-force pass per query. A probe of about a second
(`probe`) times each kind of work on this machine with the run's threads: a blocked matrix
product ("matmul"), matrix-vector products over data larger than the caches ("scan") and an
elementwise chain ("pointwise"). Seconds = work x the probe's seconds per unit.

What the model does not know (a library's constant factors on this CPU, how many iterations a
climb takes, other processes on the machine) is learned as the run goes: the progress tracker
(`harness.plan.progress`) keeps the ratio of measured to estimated time per algorithm and
applies it to what is left.
"""
from __future__ import annotations

import math
import re
import warnings
import time
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from algorithms.base import COST_KINDS, Cost, validate_params
from harness.measure.measure import WARMUP_QUERIES

#: fixed costs of one build configuration under process isolation: spawn the child, import the
#: libraries (torch alone takes about a second), let it exit (about 1 s, measured), and read the
#: dataset at LOAD_BYTES_PER_S
CHILD_STARTUP_S = 4.0
LOAD_BYTES_PER_S = 400e6
#: fixed cost of one query configuration besides its queries: scoring, the record, the pipe
QUERY_CONFIG_OVERHEAD_S = 0.05
#: the warm-up before the timed runs: WARMUP_QUERIES queries (measure.py), fewer for a slow
#: configuration (as many as take WARMUP_S, at least one)
WARMUP_S = 2.0


@dataclass(frozen=True)
class Rates:
    """Seconds per unit of each kind of work (see `algorithms.base.Cost`) on this machine.

    "matmul" and "scan" are per float of a distance (a distance of d floats costs d units),
    "pointwise" per element. `measured` says whether a probe timed them (else: the defaults).
    """

    matmul: float
    scan: float
    pointwise: float
    threads: int = 1
    measured: bool = False
    probe_s: float = 0.0
    #: the rates probed at other thread counts (`probe_threads`: a run measuring several)
    others: tuple[tuple[int, Rates], ...] = ()

    def seconds(self, work: Mapping[str, float], dimension: int) -> float:
        return sum(self.by_kind(work, dimension).values())

    def by_kind(self, work: Mapping[str, float], dimension: int) -> dict[str, float]:
        """Seconds of each kind of `work`."""
        per_unit = {"matmul": self.matmul * dimension, "scan": self.scan * dimension, "pointwise": self.pointwise}
        unknown = set(work) - set(per_unit)
        if unknown:
            raise ValueError(f"unknown kinds of work {sorted(unknown)}; known: {', '.join(COST_KINDS)}")
        return {kind: per_unit[kind] * amount for kind, amount in work.items()}

    def describe(self, dimension: int) -> str:
        origin = f"probed in {self.probe_s:.1f} s" if self.measured else "defaults, not probed"
        text = (f"{self.matmul * dimension * 1e9:.1f} ns per distance in a matrix product, "
                f"{self.scan * dimension * 1e9:.0f} ns one at a time, {self.pointwise * 1e9:.2f} ns per "
                f"element ({origin}, {self.threads} thread(s))")
        for threads, other in self.others:
            text += (f"; {threads} threads: {other.matmul * dimension * 1e9:.1f} ns, {other.scan * dimension * 1e9:.0f} ns, "
                     f"{other.pointwise * 1e9:.2f} ns")
        return text


#: rates measured on the reference machine (2-core AMD EPYC VM, 1 thread, d = 128); used
#: where no probe ran (a caller from Python), scaled by threads for the products
DEFAULT_RATES = Rates(matmul=6e-9 / 128, scan=80e-9 / 128, pointwise=1.0e-9)


def probe(dimension: int, threads: int = 1, seconds: float = 0.6) -> Rates:
    """Time each kind of work on this machine, at `dimension`, with the threads torch has now
    (the run's --threads, set before). Takes about `seconds`; each kind keeps its fastest
    repetition, so a moment of noise from another process does not stick."""
    import torch

    start = time.perf_counter()
    generator = torch.Generator().manual_seed(0)
    d = max(1, dimension)
    budget = seconds / 3
    queries = torch.randn(256, d, generator=generator)
    block = torch.randn(4096, d, generator=generator)  # a brute-force block: 256 x 4096 scores (4 MiB)
    matmul = _fastest(lambda: torch.mm(queries, block.T), budget) / (len(queries) * len(block) * d)
    data = torch.randn(max(4096, 2**25 // (4 * d)), d, generator=generator)  # 32 MiB: beyond the caches
    vector = torch.randn(d, generator=generator)
    scan = _fastest(lambda: torch.mv(data, vector), budget) / (len(data) * d)
    elements = torch.rand(2**21, generator=generator)
    chain = 4  # operations in the chain below
    pointwise = _fastest(lambda: elements.mul(-2.0).exp_().add_(1.0).sqrt_(), budget) / (len(elements) * chain)
    return Rates(matmul=matmul, scan=scan, pointwise=pointwise, threads=threads, measured=True,
                 probe_s=time.perf_counter() - start)


def probe_threads(dimension: int, counts: Sequence[int], seconds: float = 0.6) -> Rates:
    """`probe` at each thread count of `counts` (torch set to it for the probe, restored
    after): the first count's rates, the others' in `others` (`rates_for` picks them)."""
    import torch

    before = torch.get_num_threads()
    probed = []
    try:
        for threads in dict.fromkeys(counts):
            torch.set_num_threads(threads)
            probed.append(probe(dimension, threads, seconds))
    finally:
        torch.set_num_threads(before)
    return replace(probed[0], others=tuple((r.threads, r) for r in probed[1:]))


def rates_for(rates: Rates, threads: int) -> Rates:
    """The rates at `threads`: probed at that count when it was (`probe_threads`), else the
    given ones scaled as `default_rates` scales them (products and elementwise work by the
    thread count, memory-bound matrix-vector products not at all)."""
    if threads == rates.threads:
        return rates
    for count, other in rates.others:
        if count == threads:
            return other
    share = max(1, rates.threads) / max(1, threads)
    return replace(rates, matmul=rates.matmul * share, pointwise=rates.pointwise * share, threads=threads, others=())


def _fastest(call: Any, budget_s: float) -> float:
    call()  # the first call allocates
    best, deadline, runs = math.inf, time.perf_counter() + budget_s, 0
    while runs < 3 or (time.perf_counter() < deadline and runs < 200):
        began = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - began)
        runs += 1
    return best


def default_rates(threads: int = 1) -> Rates:
    """The reference machine's rates for `threads` (products and elementwise work scale with
    threads; a matrix-vector product is bound by memory bandwidth and does not)."""
    share = 1.0 / max(1, threads)
    return replace(DEFAULT_RATES, matmul=DEFAULT_RATES.matmul * share, pointwise=DEFAULT_RATES.pointwise * share,
                   threads=threads)


def generic_cost(n_train: int) -> Cost:
    """What an adapter that does not describe itself is charged: a brute-force pass per query."""
    return Cost(query={"matmul": float(n_train)}, build={"scan": float(n_train)})


@dataclass
class ConfigEstimate:
    """The estimated seconds of one build configuration's parts (before the run's corrections).

    `per_query[i]` is the seconds of one query of query configuration i in a batch.
    """

    entry: str
    startup_s: float
    build_s: float
    per_query: list[float]
    overhead_s: float = QUERY_CONFIG_OVERHEAD_S
    described: bool = True  # False: the adapter gave no Cost (the generic form was used)
    #: the kind of work that takes most of the build's time ("startup" when starting the child
    #: does) and of the queries': how far off the probe was for one kind says something of the
    #: other configurations dominated by it (harness/plan/progress.py)
    kinds: dict[str, str] = field(default_factory=lambda: {"build": "startup", "query": "matmul"})

    def warmup(self, n: int) -> int:
        """Warm-up queries before the timed runs: a full batch for fast configurations, a few
        for slow ones (as many as take WARMUP_S), never more than n."""
        slowest = max(self.per_query, default=0.0)
        few = WARMUP_QUERIES if slowest <= 0 else int(WARMUP_S / slowest)
        return max(1, min(n, WARMUP_QUERIES, few))

    def query_config_s(self, index: int, n: int, runs: int, warmup: int | None = None) -> float:
        warm = self.warmup(n) if warmup is None else warmup
        return self.overhead_s + (runs * n + warm) * self.per_query[index]

    def fixed_s(self) -> float:
        return self.startup_s + self.build_s

    def total_s(self, n: int, runs: int, indexes: Sequence[int] | None = None) -> float:
        """Start-up, build and the query configurations `indexes` (default all) on n queries."""
        chosen = range(len(self.per_query)) if indexes is None else indexes
        return self.fixed_s() + sum(self.query_config_s(i, n, runs) for i in chosen)

    def scaled(self, ratio: float, build_ratio: float | None = None) -> ConfigEstimate:
        """This estimate corrected by measured / estimated ratios: `ratio` for the queries,
        `build_ratio` (default the same) for start-up and build."""
        fixed = ratio if build_ratio is None else build_ratio
        return replace(self, startup_s=self.startup_s * fixed, build_s=self.build_s * fixed,
                       per_query=[t * ratio for t in self.per_query], overhead_s=self.overhead_s * ratio)


def adapter_cost(spec: Any, build: Mapping[str, Any], query: Mapping[str, Any], n_train: int, dimension: int,
                 k: int) -> tuple[Cost, bool]:
    """The adapter's own Cost for this configuration (parameters completed with their
    defaults), or the generic form; the flag says which."""
    adapter = spec.adapter
    full_build = validate_params(spec.name, adapter.build_params, build, "build")
    full_query = validate_params(spec.name, adapter.query_params, query, "query")
    try:
        hint = adapter.cost(full_build, full_query, n_train, dimension, k)
    except Exception as exc:  # noqa: BLE001 - a plugin's faulty hint must not stop the run; the plan says so
        _warn_faulty_hint(spec.name, exc)
        hint = None
    return (hint, True) if hint is not None else (generic_cost(n_train), False)


_FAULTY_HINTS: set[str] = set()


def _warn_faulty_hint(name: str, exc: BaseException) -> None:
    """Say once per algorithm that its cost hint failed and the generic form stands in."""
    if name not in _FAULTY_HINTS:
        _FAULTY_HINTS.add(name)
        warnings.warn(f"{name}: its cost hint (Adapter.cost) failed with {type(exc).__name__}: {exc}; "
                      "the plan uses the generic estimate (a brute-force pass per query) for it", stacklevel=2)


def batched_work(work: Mapping[str, float], batch_size: int | None) -> dict[str, float]:
    """One query's `work` when it is searched `batch_size` queries per call: a blocked product's
    data are read once per call and shared by the call's queries, so of each distance of a
    product, 1/b is charged at the scan rate (streaming the data) and the rest at the product
    rate; b = 1 (single mode) is all scan, the whole set in one call (None) all product."""
    out = dict(work)
    if batch_size is None or "matmul" not in out:
        return out
    shared = out["matmul"] / max(1, batch_size)
    out["matmul"] -= shared
    out["scan"] = out.get("scan", 0.0) + shared
    if not out["matmul"]:
        del out["matmul"]
    return out


def estimate_config(
    config: Any, n_train: int, dimension: int, k: int, rates: Rates, isolated: bool = True, mode: str = "batch",
    query_params: Sequence[Mapping[str, Any]] | None = None, batch_sizes: Sequence[int | None] | None = None,
) -> ConfigEstimate:
    """Estimate a build configuration (`harness.plan.sweeps.BuildConfig`) on a dataset of
    `n_train` x `dimension` points, at `rates` (those of the configuration's thread count,
    `rates_for`). `isolated`: its own child process (start-up and dataset load are paid per
    configuration). `batch_sizes[i]` is query configuration i's batch size (`batched_work`;
    default: `mode`'s, 1 in single mode, where the products of a batch become matrix-vector
    products, charged at the scan rate, else the whole set)."""
    queries = list(config.query_params if query_params is None else query_params)
    default_batch = 1 if mode == "single" else None
    sizes = list(batch_sizes) if batch_sizes is not None else [default_batch] * len(queries)
    build: dict[str, float] = {}
    query: dict[str, float] = {}
    per_query, described = [], True
    for index, params in enumerate(queries or [{}]):
        cost, own = adapter_cost(config.spec, config.build_params, params, n_train, dimension, k)
        described = described and own
        if index == 0:
            build = rates.by_kind(cost.build, dimension)
        work = batched_work(cost.query, sizes[index] if index < len(sizes) else default_batch)
        seconds = rates.by_kind(work, dimension)
        for kind, amount in seconds.items():
            query[kind] = query.get(kind, 0.0) + amount
        per_query.append(sum(seconds.values()))
    if not queries:
        per_query = []
    startup = CHILD_STARTUP_S + n_train * dimension * 4 / LOAD_BYTES_PER_S if isolated else 0.0
    kinds = {"build": max({**build, "startup": startup}.items(), key=lambda item: item[1])[0],
             "query": max(query.items(), key=lambda item: item[1])[0] if query else "matmul"}
    return ConfigEstimate(config.entry, startup, sum(build.values()), per_query, described=described, kinds=kinds)


# --- the query subset -----------------------------------------------------------------------


#: the query counts a budget may choose (and their powers of ten): a step of at most 1.5x, so
#: that a little noise in the probe does not change the count, and with it every record's key
GRID_STEPS = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)


def query_grid(n_max: int) -> list[int]:
    """The counts a budget chooses from, ascending, up to and including n_max."""
    counts = {n_max}
    power = 1
    while power <= n_max:
        counts.update(int(step * power) for step in GRID_STEPS if step * power <= n_max)
        power *= 10
    return sorted(c for c in counts if c >= 1)


@dataclass
class Sizing:
    """How many queries a configuration runs within a budget, or why it cannot run."""

    n_queries: int | None  # None: does not fit even at the minimum
    seconds: float  # estimated seconds at that count (at the minimum when it does not fit)
    warmup: int = 0
    minimum: int = 1


def size_queries(
    estimate: ConfigEstimate, budget_s: float | None, n_max: int, runs: int, min_queries: int,
    indexes: Sequence[int] | None = None,
) -> Sizing:
    """The largest count of the grid (up to n_max) whose estimated time fits `budget_s`.

    Every query configuration of a build runs on the same first n queries (a method and its
    control must see the same ones). Below `min_queries` (or n_max if smaller) nothing is
    worth measuring: such a configuration does not fit.
    """
    floor = min(min_queries, n_max)
    if budget_s is None:
        return Sizing(n_max, estimate.total_s(n_max, runs, indexes), estimate.warmup(n_max), floor)
    fitting = [n for n in query_grid(n_max) if n >= floor and estimate.total_s(n, runs, indexes) <= budget_s]
    if not fitting:
        return Sizing(None, estimate.total_s(floor, runs, indexes), estimate.warmup(floor), floor)
    n = fitting[-1]
    return Sizing(n, estimate.total_s(n, runs, indexes), estimate.warmup(n), floor)


# --- durations as people write them -----------------------------------------------------------

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds from '90', '90s', '10m', '2h', '1h30m' or '1.5h'; ValueError otherwise."""
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned:
        raise ValueError("empty duration")
    try:
        value = float(cleaned)
    except ValueError:
        parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", cleaned)
        if not parts or "".join(a + u for a, u in parts) != cleaned:
            raise ValueError(f"not a duration: {text!r} (e.g. 90s, 10m, 2h, 1h30m)") from None
        value = sum(float(amount) * _UNITS[unit] for amount, unit in parts)
    if not value > 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return value


def format_duration(seconds: float) -> str:
    """'45 s', '6 min 30 s', '2 h 05 min': what a person reads in a plan."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 60:
        whole = int(seconds // 60)
        return f"{whole} min {int(seconds - 60 * whole):02d} s" if minutes < 10 else f"{minutes:.0f} min"
    hours = int(seconds // 3600)
    return f"{hours} h {int((seconds - 3600 * hours) // 60):02d} min"


__all__ = [
    "CHILD_STARTUP_S", "ConfigEstimate", "DEFAULT_RATES", "Rates", "Sizing", "WARMUP_QUERIES", "adapter_cost",
    "batched_work", "default_rates", "estimate_config", "probe_threads", "rates_for", "format_duration", "generic_cost", "parse_duration", "probe",
    "query_grid", "size_queries",
]

