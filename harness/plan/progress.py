"""Progress over estimated work, and an ETA that learns from what the run measures.

The bar counts the plan's estimated seconds (`harness.plan.budget`), not builds: a build of
HNSW on a million points and one of brute force are not the same step. Each finished part (a
build with its start-up, or a query configuration) tells how far the model was off: the ratio
of measured to estimated seconds is kept per algorithm and part (build, queries) and applied
to what is left of that algorithm; parts of algorithms not seen yet take the run's ratio. Few
measured seconds say little, so each ratio leans on the next coarser one by PRIOR_S seconds
(part -> algorithm -> run -> 1); the run's is the median of the algorithms' ratios. The ETA is
the remaining corrected work scheduled onto the run's `parallel` workers, in the sweep's
order, after what each running one still has.

A long configuration (over INNER_BAR_S estimated) gets a bar of its own over its query
configurations. Bars are for a terminal: when the stream is not one (a CI log, `nohup`, a
file), carriage-return redraws would pile up in it, so progress is plain lines instead: one per
finished configuration, and an ETA line when LINE_EVERY_S passed without one. Every step is
also written as one JSON line to `progress.jsonl` beside the records (elapsed, done and total
estimated seconds, the ETA), so that a benchmark can say how good the ETA was (bench/scale.py).
"""
from __future__ import annotations

import functools
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO, TypeVar

from tqdm import tqdm

from harness.plan.budget import MIN_QUERIES, Allotment, makespan
from harness.plan.cost import format_duration, size_queries

PRIOR_S = 30.0
INNER_BAR_S = 60.0
#: how often a shown bar redraws its ETA between events (a long query configuration says nothing for minutes)
TICK_S = 1.0
#: when the stream is not a terminal: the longest stretch without a progress line
LINE_EVERY_S = 30.0
BUILD = "build"
F = TypeVar("F", bound=Callable[..., Any])


def _locked(method: F) -> F:
    """The runner's thread and the bar's ticker thread take turns."""

    @functools.wraps(method)
    def call(self: Progress, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return call  # type: ignore[return-value]


@dataclass
class _Ledger:
    estimated: float = 0.0
    measured: float = 0.0

    def add(self, estimated: float, measured: float) -> None:
        self.estimated += estimated
        self.measured += measured

    def ratio(self, prior: float) -> float:
        return (self.measured + prior * PRIOR_S) / (self.estimated + PRIOR_S)


@dataclass
class _Running:
    allotment: Allotment
    left: dict[Any, float]  # part (BUILD or a query index) -> the model's raw estimate, seconds
    since: float  # when the part now running started
    bar: Any = None


@dataclass
class Progress:
    """The run's progress: estimated work done and left, the learned ratios, the ETA, the bars
    and the JSON-lines log. The runner calls `start`, `part_done`, `finish` (or `drop`)."""

    allotments: list[Allotment]
    parallel: int = 1
    log_path: Path | None = None
    show: bool = False
    min_queries: int = MIN_QUERIES
    clock: Callable[[], float] = time.monotonic
    began: float = field(default=0.0)
    done_s: float = 0.0
    #: where bars or lines go (None: sys.stderr as it is when the progress starts)
    stream: TextIO | None = None
    #: whether `stream` is a terminal (None: ask it); a bar when it is, plain lines when not
    terminal: bool | None = None

    def __post_init__(self) -> None:
        self.began = self.clock()
        if self.stream is None:
            self.stream = sys.stderr
        if self.terminal is None:
            isatty = getattr(self.stream, "isatty", None)
            self.terminal = bool(isatty()) if callable(isatty) else False
        self.bars = self.show and self.terminal
        self.plain = self.show and not self.terminal
        self.last_line = self.began
        self.ledgers: dict[tuple[str, str], _Ledger] = {}
        self.kinds = {(a.config.entry, part): a.estimate.kinds.get(part) for a in self.allotments for part in (BUILD, "query")}
        self.running: dict[int, _Running] = {}
        self.closed: set[int] = set()
        self.lock = threading.RLock()
        self.stopped = threading.Event()
        self.bar = tqdm(total=max(1, round(self.total_s())), desc="sweep", unit="s", disable=not self.bars, leave=False,
                        bar_format="{desc} {percentage:3.0f}%|{bar}| [{elapsed}]", file=self.stream)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self.log_path.write_text("")
        self._log("plan", configurations=len(self.allotments))
        if self.show:
            threading.Thread(target=self._tick_until_closed, name="gpnn-progress", daemon=True).start()

    def _tick_until_closed(self) -> None:
        while not self.stopped.wait(TICK_S):
            self.tick()

    # -- what the model learned --------------------------------------------------------------------
    def ratio(self, entry: str, part: str | None = None) -> float:
        """Measured / estimated seconds so far: of an algorithm's part ('build' or 'query'), of
        an algorithm (part None), or of the run (entry ''). A part leans on the parts of other
        algorithms dominated by the same kind of work (the probe may be off for one kind:
        memory-bound scans slow down most when other processes run), which lean on the run's
        ratio: the median of the algorithms' own, so that one far off says little of the others."""
        entries = sorted({name for name, _ in self.ledgers})
        own = sorted(_sum(ledger for (name, _), ledger in self.ledgers.items() if name == e).ratio(1.0) for e in entries)
        run = (own[(len(own) - 1) // 2] * own[len(own) // 2]) ** 0.5 if own else 1.0
        if not entry:
            return run
        if part is None:
            return _sum(ledger for (name, _), ledger in self.ledgers.items() if name == entry).ratio(run)
        kind = self.kinds.get((entry, part))
        alike = _sum(ledger for key, ledger in self.ledgers.items() if kind is not None and self.kinds.get(key) == kind)
        return self.ledgers.get((entry, part), _Ledger()).ratio(alike.ratio(run))

    @_locked
    def resize(self, allotment: Allotment, min_queries: int) -> None:
        """Choose `allotment`'s count again with the ratios learned so far (before it starts):
        the budget then holds for what this machine turned out to do."""
        if allotment.budget_s is None or not allotment.todo:
            return
        before = allotment.seconds
        allotment.size(allotment.budget_s, allotment.reason, min_queries, self.ratio(allotment.config.entry, "query"),
                       self.ratio(allotment.config.entry, BUILD))
        if allotment.seconds != before:
            self._refresh()

    # -- events ---------------------------------------------------------------------------------
    @_locked
    def start(self, allotment: Allotment, indexes: list[int], slot: int = 0) -> None:
        raw = allotment.estimate
        left: dict[Any, float] = {BUILD: raw.fixed_s()}
        for index in indexes:
            left[index] = raw.query_config_s(index, allotment.n_queries, allotment.runs, allotment.sizing.warmup)
        bar = None
        if self.bars and allotment.seconds > INNER_BAR_S and len(indexes) > 1:
            bar = tqdm(total=len(indexes), desc=f"  {allotment.config.entry}", unit="config", position=slot + 1, leave=False,
                       file=self.stream)
        self.running[id(allotment)] = _Running(allotment, left, self.clock(), bar)
        self._log("start", entry=allotment.config.entry, estimated_s=allotment.seconds)

    @_locked
    def part_done(self, allotment: Allotment, part: Any, measured_s: float, learn: bool = True, at: float | None = None) -> None:
        """A build (part 'build') or query configuration (its index) finished in `measured_s`;
        `learn` False for a failure, whose time says nothing about the model."""
        running = self.running.get(id(allotment))
        if running is None or part not in running.left:
            return
        raw = running.left.pop(part)
        kind = BUILD if part == BUILD else "query"
        if learn:
            self.ledgers.setdefault((allotment.config.entry, kind), _Ledger()).add(raw, measured_s)
        planned = allotment.build_seconds() if part == BUILD else allotment.query_seconds(part)
        self.done_s += planned
        running.since = self.clock() if at is None else at
        if running.bar is not None and part != BUILD:
            running.bar.update(1)
        self._log(kind, entry=allotment.config.entry, part=str(part), estimated_s=raw, measured_s=measured_s)

    @_locked
    def finish(self, allotment: Allotment) -> None:
        """The configuration ended (whatever was not reported counts as done: it failed). The
        time since its last part (the child's exit) counts against its build, which the
        model charges with the child's start-up."""
        running = self.running.pop(id(allotment), None)
        if running is not None:
            tail = max(0.0, self.clock() - running.since)
            self.ledgers.setdefault((allotment.config.entry, BUILD), _Ledger()).add(0.0, tail)
            for part in list(running.left):
                self.done_s += allotment.build_seconds() if part == BUILD else allotment.query_seconds(part)
            if running.bar is not None:
                running.bar.close()
        self.closed.add(id(allotment))
        self._log("finish", entry=allotment.config.entry)
        if self.plain:
            config = allotment.config
            params = " ".join(f"{k}={v}" for k, v in config.build_params.items())
            self._line(f"finished {config.entry}{' ' + params if params else ''} "
                       f"({len(self.closed)} of {len(self.allotments)} configurations)")

    @_locked
    def tick(self) -> None:
        """Redraw the bar with the ETA of now (a ticker thread does, while progress is shown);
        without a terminal, write an ETA line when none was written for LINE_EVERY_S."""
        if self.stopped.is_set():
            return
        total, eta = self._refresh()
        now = self.clock()
        if self.plain and now - self.last_line >= LINE_EVERY_S:
            names = ", ".join(sorted({r.allotment.config.entry for r in self.running.values()}))
            self._line(f"running{' ' + names if names else ''}, {format_duration(now - self.began)} since the start", total, eta)

    @_locked
    def drop(self, allotment: Allotment) -> None:
        """Nothing of this configuration runs (skipped, or every record already there)."""
        self.closed.add(id(allotment))
        self._refresh()

    @_locked
    def close(self) -> None:
        self.stopped.set()
        self._log("end")
        for running in self.running.values():
            if running.bar is not None:
                running.bar.close()
        self.bar.close()

    # -- the estimate of what is left ------------------------------------------------------------
    def total_s(self) -> float:
        return sum(a.seconds for a in self.allotments)

    def eta_s(self) -> float:
        now = self.clock()
        busy = [self._left_s(r, now) for r in self.running.values()]
        queued = [self._queued_s(a) for a in self.allotments if id(a) not in self.closed and id(a) not in self.running]
        return makespan(queued, self.parallel, busy)

    def _left_s(self, running: _Running, now: float) -> float:
        entry = running.allotment.config.entry
        parts = sorted(running.left, key=lambda p: (p != BUILD, p if p != BUILD else -1))
        corrected = [running.left[p] * self.ratio(entry, BUILD if p == BUILD else "query") for p in parts]
        if not corrected:
            return 0.0
        corrected[0] = max(0.0, corrected[0] - (now - running.since))
        return sum(corrected)

    def _queued_s(self, allotment: Allotment) -> float:
        """What a configuration not started yet will take: its estimate corrected by the ratios,
        sized again under its budget as `resize` will size it when it starts (maybe skipped)."""
        if not allotment.todo or (allotment.skipped and allotment.budget_s is None):
            return 0.0
        entry = allotment.config.entry
        corrected = allotment.estimate.scaled(self.ratio(entry, "query"), self.ratio(entry, BUILD))
        if allotment.budget_s is None:
            return corrected.total_s(allotment.n_queries, allotment.runs, allotment.todo)
        sizing = size_queries(corrected, allotment.budget_s, allotment.n_max, allotment.runs, self.min_queries, allotment.todo)
        return 0.0 if sizing.n_queries is None else sizing.seconds

    # -- output ----------------------------------------------------------------------------------
    def _line(self, what: str, total: float | None = None, eta: float | None = None) -> None:
        """One plain progress line (no terminal): what happened, the work done, the ETA."""
        if total is None or eta is None:
            total, eta = max(self.total_s(), self.done_s), self.eta_s()
        share = f" ({100 * self.done_s / total:.0f}%)" if total > 0 else ""
        stream = self.stream or sys.stderr
        stream.write(f"progress: {what}; {format_duration(self.done_s)} of {format_duration(total)} estimated"
                          f"{share}, ETA {format_duration(eta)}\n")
        stream.flush()
        self.last_line = self.clock()

    def _refresh(self) -> tuple[float, float]:
        total, eta = max(self.total_s(), self.done_s), self.eta_s()
        self.bar.total = max(1, round(total))
        self.bar.n = min(self.bar.total, round(self.done_s))
        names = ", ".join(sorted({r.allotment.config.entry for r in self.running.values()}))
        self.bar.set_description_str(f"sweep: {format_duration(self.done_s)} of {format_duration(total)} estimated, "
                                     f"ETA {format_duration(eta)}" + (f" ({names})" if names else ""), refresh=True)
        return total, eta

    def _log(self, event: str, **fields: Any) -> None:
        total, eta = self._refresh()
        if self.log_path is None:
            return
        line = {"event": event, "elapsed_s": round(self.clock() - self.began, 3), "done_s": round(self.done_s, 3),
                "total_s": round(total, 3), "fraction": round(self.done_s / total, 4) if total > 0 else 1.0,
                "eta_s": round(eta, 3), "ratio": round(self.ratio(""), 4), **fields}
        with self.log_path.open("a") as handle:
            handle.write(json.dumps(line) + "\n")


def _sum(ledgers: Any) -> _Ledger:
    total = _Ledger()
    for ledger in ledgers:
        total.add(ledger.estimated, ledger.measured)
    return total
