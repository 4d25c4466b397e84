"""Budgets: how many queries each build configuration runs, which ones cannot run, and the plan.

Two budgets bound a run. The per-configuration budget (`--config-budget`, DEFAULT_CONFIG_BUDGET_S)
bounds one build configuration's estimated time: start-up, build and all its query
configurations. The run budget (`--budget`, none by default) bounds the whole sweep's estimated
wall time, with `--workers` configurations at once. A configuration whose estimate exceeds
its budget on all its queries runs on the first n test queries instead, n the largest of
`cost.query_grid` that fits (recorded as n_queries of n_queries_total); one that does not fit
even on `min_queries` queries (its build alone may be too long) is skipped, with the reason in
the plan, the summary and the report, never silently.

Under a run budget every configuration gets at most the same level L (below its own budget):
the largest L at which the sweep, scheduled in its order onto `parallel` workers, fits. So
cheap configurations keep all their queries and the slow ones share what is left.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from harness.plan.cost import ConfigEstimate, Sizing, format_duration, size_queries
from harness.measure.job import Deadline

#: a default that keeps one configuration to a few minutes on a laptop
DEFAULT_CONFIG_BUDGET_S = 600.0
#: a configuration is stopped at this many times its budget (its estimate was that far off):
#: what it has not done by then is recorded as skipped (`harness.measure.job.Deadline`)
DEADLINE_FACTOR = 1.5
#: ... and never sooner than this many seconds past its budget (small budgets, start-up noise)
DEADLINE_MIN_SLACK_S = 30.0
#: fewer queries than this measure nothing worth a record (recall's interval spans +-0.3)
MIN_QUERIES = 10


@dataclass(frozen=True)
class Budget:
    """The budgets of a run, in seconds (None: unbounded)."""

    config_s: float | None = None
    run_s: float | None = None
    parallel: int = 1
    min_queries: int = MIN_QUERIES

    @property
    def bounded(self) -> bool:
        return self.config_s is not None or self.run_s is not None


@dataclass
class Allotment:
    """One build configuration's part of the plan: its estimate, the query configurations it
    computes (`todo`, indexes into its query parameters), and the count it runs them on."""

    config: Any  # harness.plan.sweeps.BuildConfig
    estimate: ConfigEstimate
    n_max: int
    todo: list[int]
    runs: int
    budget_s: float | None = None
    sizing: Sizing = field(default_factory=lambda: Sizing(0, 0.0))
    reason: str = ""  # which budget bounded it, for the notes
    #: the run's corrections of the estimate (queries, build) when the count was last chosen
    ratio: float = 1.0
    build_ratio: float = 1.0
    #: query configurations (index -> whether its record predates fingerprints) whose record was
    #: made by code changed since: recomputed, or kept as current all the same (--reuse-stale)
    stale_found: dict[int, bool] = field(default_factory=dict)
    kept_found: dict[int, bool] = field(default_factory=dict)

    @property
    def stale(self) -> int:
        return len(self.stale_found)

    @property
    def stale_kept(self) -> int:
        return len(self.kept_found)

    @property
    def predating(self) -> int:
        return sum(self.stale_found.values()) + sum(self.kept_found.values())

    @property
    def corrected(self) -> ConfigEstimate:
        return self.estimate.scaled(self.ratio, self.build_ratio)

    @property
    def skipped(self) -> bool:
        return self.sizing.n_queries is None and bool(self.todo)

    @property
    def n_queries(self) -> int:
        """The count the configuration runs on (n_max when skipped: the records' identity)."""
        return self.n_max if self.sizing.n_queries is None else self.sizing.n_queries

    @property
    def seconds(self) -> float:
        """Estimated seconds of the work left (0 when skipped or nothing is left)."""
        return 0.0 if self.skipped or not self.todo else self.sizing.seconds

    def query_seconds(self, index: int) -> float:
        """Estimated seconds of query configuration `index` at the chosen count."""
        return self.corrected.query_config_s(index, self.n_queries, self.runs, self.sizing.warmup)

    def build_seconds(self) -> float:
        return self.corrected.fixed_s()

    def size(self, budget_s: float | None, reason: str, min_queries: int, ratio: float = 1.0, build_ratio: float | None = None) -> None:
        """Choose the count under `budget_s` for the estimate corrected by the ratios."""
        self.budget_s, self.reason = budget_s, reason
        self.ratio, self.build_ratio = ratio, ratio if build_ratio is None else build_ratio
        self.sizing = size_queries(self.corrected, budget_s, self.n_max, self.runs, min_queries, self.todo)

    def deadline(self, indexes: Sequence[int]) -> Deadline | None:
        """When this configuration must be over (None: no budget bounds it), with the plan's
        estimate of each query configuration `indexes` names (indexes into its query params)."""
        if self.budget_s is None or self.skipped:
            return None
        seconds = max(self.budget_s * DEADLINE_FACTOR, self.budget_s + DEADLINE_MIN_SLACK_S)
        why = f"{DEADLINE_FACTOR:g} x {self.reason} of {format_duration(self.budget_s)}"
        return Deadline(seconds, why, tuple(self.query_seconds(i) for i in indexes))

    def note(self) -> str | None:
        """What the budget did to this configuration, for its records (None: nothing)."""
        if not self.todo or self.budget_s is None:
            return None
        if self.skipped:
            fixed = self.corrected.fixed_s()
            return (f"skipped: estimated {format_duration(self.sizing.seconds)} even on the first "
                    f"{self.sizing.minimum} queries ({format_duration(fixed)} to start and build), over {self.reason} "
                    f"of {format_duration(self.budget_s)}")
        if self.n_queries < self.n_max:
            return (f"first {self.n_queries} of {self.n_max} queries: the most that fit {self.reason} of "
                    f"{format_duration(self.budget_s)} (estimated {format_duration(self.sizing.seconds)})")
        return None


CONFIG_REASON = "the per-configuration budget (--config-budget)"


def run_reason(run_s: float, parallel: int) -> str:
    return f"each configuration's share of --budget {format_duration(run_s)}" + (f" at --workers {parallel}" if parallel > 1 else "")


def makespan(durations: Sequence[float], parallel: int, busy: Sequence[float] = ()) -> float:
    """Wall time of `durations` run in order, each on the first free of `parallel` workers,
    some of which are `busy` for a while first (list scheduling, as the executor runs them)."""
    workers = sorted([*busy, *[0.0] * max(0, parallel - len(busy))])[: max(1, parallel)]
    for duration in durations:
        workers[0] += duration
        workers.sort()
    return max(workers, default=0.0)


def allot(allotments: list[Allotment], budget: Budget) -> None:
    """Size every allotment's query count under the budgets (in place)."""
    for item in allotments:
        item.size(budget.config_s, CONFIG_REASON, budget.min_queries)
    if budget.run_s is None or _fits(allotments, budget):
        return
    ceiling = budget.config_s if budget.config_s is not None else max(a.estimate.total_s(a.n_max, a.runs, a.todo) for a in allotments)
    level = _level(lambda share: _trial(allotments, budget, share), ceiling)
    reason = run_reason(budget.run_s, budget.parallel)
    for item in allotments:
        if budget.config_s is None or level < budget.config_s:
            item.size(level, reason, budget.min_queries)


def _fits(allotments: list[Allotment], budget: Budget) -> bool:
    return budget.run_s is None or makespan([a.seconds for a in allotments], budget.parallel) <= budget.run_s


def _trial(allotments: list[Allotment], budget: Budget, share: float) -> bool:
    durations = []
    for item in allotments:
        cap = share if budget.config_s is None else min(share, budget.config_s)
        sizing = size_queries(item.corrected, cap, item.n_max, item.runs, budget.min_queries, item.todo)
        durations.append(0.0 if sizing.n_queries is None or not item.todo else sizing.seconds)
    return makespan(durations, budget.parallel) <= (budget.run_s or 0.0)


def _level(fits: Callable[[float], bool], ceiling: float) -> float:
    """The largest share in [0, ceiling] at which `fits` holds (bisection; 0 when none does)."""
    low, high = 0.0, ceiling
    for _ in range(40):
        middle = (low + high) / 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return low


def format_plan(allotments: Sequence[Allotment], budget: Budget, rates_line: str, n_test: int) -> list[str]:
    """The plan as lines for the terminal: each configuration, its queries (of the most it may
    run: the test set, --queries, the sweep's max_queries), estimated time, and the total
    (serial, and at the run's parallelism)."""
    lines = [f"plan (cost model: {rates_line}):"]
    width = max((len(_name(a)) for a in allotments), default=10)
    lines.append(f"  {'configuration':<{width}}  {'queries':>13}  {'query configs':>13}  {'estimated':>12}")
    for item in allotments:
        queries = f"{item.n_queries}/{item.n_max}" if not item.skipped else "-"
        left = f"{len(item.todo)} of {len(item.config.query_params)}" if len(item.todo) != len(item.config.query_params) else str(len(item.todo))
        when = "reused" if not item.todo else ("SKIPPED" if item.skipped else format_duration(item.seconds))
        lines.append(f"  {_name(item):<{width}}  {queries:>13}  {left:>13}  {when:>12}")
    for item in allotments:
        note = item.note()
        if note:
            lines.append(f"  note: {_name(item)}: {note}")
    lines += stale_lines(allotments)
    durations = [a.seconds for a in allotments]
    running = sum(1 for a in allotments if a.todo and not a.skipped)
    skipped = sum(1 for a in allotments if a.skipped)
    total = f"total: {running} configuration(s) to run, {skipped} skipped; estimated {format_duration(sum(durations))}"
    if budget.parallel > 1:
        total += f" of work, {format_duration(makespan(durations, budget.parallel))} at --workers {budget.parallel}"
    limits = [f"--config-budget {format_duration(budget.config_s)}" if budget.config_s else "",
              f"--budget {format_duration(budget.run_s)}" if budget.run_s else ""]
    limits = [text for text in limits if text]
    lines.append(total + (f" (within {', '.join(limits)})" if limits else " (no budget)"))
    return lines


def stale_lines(allotments: Sequence[Allotment]) -> list[str]:
    """The plan's word on records made by code that changed since (`algorithms.fingerprint`):
    how many per algorithm are recomputed or kept, and once, how many predate fingerprints."""
    stale: dict[str, int] = {}
    kept: dict[str, int] = {}
    waiting: dict[str, int] = {}
    for item in allotments:
        if item.stale and item.skipped:  # not computed this run: its stale records stay as they are
            waiting[item.config.entry] = waiting.get(item.config.entry, 0) + item.stale
        elif item.stale:
            stale[item.config.entry] = stale.get(item.config.entry, 0) + item.stale
        if item.stale_kept:
            kept[item.config.entry] = kept.get(item.config.entry, 0) + item.stale_kept
    lines = [f"  {n} stale: the code of {entry} changed since they were made; recomputed (the old records "
             "move to superseded/ beside them)" for entry, n in stale.items()]
    lines += [f"  {n} stale kept (--reuse-stale): the code of {entry} changed since they were made; reused as "
              "they are, and the summary and report mark them" for entry, n in kept.items()]
    lines += [f"  {n} stale, left as they are: the code of {entry} changed since they were made, but the budget "
              "skips their configuration this run" for entry, n in waiting.items()]
    predating = sum(item.predating for item in allotments)
    if predating:
        lines.append(f"  note: {predating} of these record(s) predate code fingerprints (made by an older harness, "
                     "their code is unknown): counted as stale")
    return lines


def _name(item: Allotment) -> str:
    """The configuration as the plan lists it: entry, build parameters, and the measurement axes
    it runs at when they are not the default (`t=2`: its thread count; `b=1,100,all`: the batch
    sizes of its query configurations)."""
    params = ",".join(f"{k}={v}" for k, v in item.config.build_params.items() if k != "potential")
    name = f"{item.config.entry}({params})" if params else item.config.entry
    threads = getattr(item.config, "threads", None)
    sizes = list(dict.fromkeys(getattr(item.config, "batch_sizes", None) or []))
    if sizes and sizes != [None]:
        name += " b=" + ",".join("all" if size is None else str(size) for size in sizes)
    if threads is not None and threads != 1:
        name += f" t={threads}"
    return name
