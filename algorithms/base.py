"""The adapter interface: the only thing a new algorithm writes.

An adapter wraps one nearest-neighbour method. The harness builds it with one set of build
parameters, calls `fit` once, then for each set of query parameters calls `set_query_params`
and `search` (a batch of queries in one call) or `search_each` (one query per call, each call
timed by a clock the harness hands in). Adapters never see files, records or plots, nor choose
a clock: the runner owns those.

What need not happen per query does not: query parameters are pushed into the index once, in
`set_query_params` (`_apply_query_params`); process-wide settings (thread counts) are entered
once around a whole batch or a whole single-query loop (`_search_scope`); k is checked once per
call of `search` / `search_each`. A library with a cheap call of its own overrides
`_search_each` to time that bare call, reading its counters and converting its distances once
for the whole loop, outside the per-query clock pairs.

Parameters are declared up front as `Param` objects so that they can be validated in the
constructor (as scikit-learn does), listed by `python -m harness list`, and checked in sweep
files before anything runs.

All vectors reaching an adapter are float32. Angular datasets are normalised by the loader, so
Euclidean distance on them ranks exactly as cosine distance does; inner-product (`dot`) datasets
reach it as stored, and only an adapter that lists "dot" in its `metrics` is given one (the
harness passes the dataset's distance as `metric` and refuses the others before anything runs).
"""
from __future__ import annotations

import abc
import difflib
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, ContextManager, Mapping, Sequence

import numpy as np

from harness.errors import ParameterError

_MISSING = object()


@dataclass(frozen=True)
class Param:
    """One declared parameter: its type, default, the values allowed, and what it means.

    `check` returns None when the value is fine, else a sentence saying what is allowed.
    `choices` restricts the value to a fixed set.
    """

    type: type | tuple[type, ...]
    default: Any = _MISSING
    help: str = ""
    check: Callable[[Any], str | None] | None = None
    choices: tuple[Any, ...] | None = None

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def describe(self) -> str:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        text = "|".join(t.__name__ for t in types)
        if self.choices:
            text += " in {" + ", ".join(map(str, self.choices)) + "}"
        text += " (required)" if self.required else f" = {self.default!r}"
        return f"{text}: {self.help}" if self.help else text


def positive(value: Any) -> str | None:
    return None if value > 0 else "must be > 0"


def at_least(bound: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value >= bound else f"must be >= {bound}"

    return check


def in_range(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"must be in [{low}, {high}]"

    return check


def validate_params(
    owner: str, declared: Mapping[str, Param], given: Mapping[str, Any], kind: str
) -> dict[str, Any]:
    """Return `given` completed with defaults, or raise ParameterError naming what is wrong.

    `owner` and `kind` ("build" or "query") only serve the message.
    """
    unknown = [name for name in given if name not in declared]
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, list(declared), n=3)
        allowed = ", ".join(declared) or "none"
        hint = f"did you mean {' or '.join(close)}?" if close else f"{kind} parameters of {owner}: {allowed}"
        raise ParameterError(f"{owner}: unknown {kind} parameter {name!r}", hint)
    values: dict[str, Any] = {}
    for name, param in declared.items():
        if name in given:
            value = given[name]
        elif param.required:
            raise ParameterError(f"{owner}: {kind} parameter {name!r} is required", param.describe())
        else:
            value = param.default
        values[name] = _check_value(owner, name, param, value)
    return values


def _check_value(owner: str, name: str, param: Param, value: Any) -> Any:
    types = param.type if isinstance(param.type, tuple) else (param.type,)
    if value is None and type(None) in types:
        return value
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        expected = " or ".join(t.__name__ for t in types)
        raise ParameterError(
            f"{owner}: parameter {name!r} must be {expected}, got {value!r} ({type(value).__name__})",
            param.describe(),
        )
    if param.choices is not None and value not in param.choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in param.choices], n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(map(str, param.choices))}"
        raise ParameterError(f"{owner}: parameter {name!r} = {value!r} is not allowed", hint)
    if param.check is not None:
        problem = param.check(value)
        if problem:
            raise ParameterError(f"{owner}: parameter {name!r} = {value!r} {problem}", param.describe())
    return value


@dataclass
class SearchStats:
    """Per-query statistics of the last `search` call; arrays of length n_queries, or None.

    `extra` carries further per-query arrays (e.g. converged-onto-NN flags) and `scalars`
    carries per-search numbers an adapter wants recorded (e.g. the length scale it used).
    """

    iterations: np.ndarray | None = None
    dist_comps: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    scalars: dict[str, float] = field(default_factory=dict)

    @classmethod
    def concat(cls, parts: Sequence[SearchStats], sizes: Sequence[int]) -> SearchStats:
        """The stats of consecutive searches of `sizes[i]` queries each, as one search's.

        Per-query arrays are concatenated (None if any part lacks one). A scalar the parts
        agree on is kept as is; one that differs (a per-search rate or mean) becomes the
        mean weighted by each part's queries, which is what one search of all of them reports.
        """
        def cat(values: list[np.ndarray | None]) -> np.ndarray | None:
            if not values or any(v is None for v in values):
                return None
            return np.concatenate([np.atleast_1d(v) for v in values])  # type: ignore[arg-type]

        extra_keys = list(parts[0].extra) if parts else []
        scalars: dict[str, float] = {}
        for key in parts[-1].scalars if parts else ():
            values = [p.scalars.get(key) for p in parts]
            if all(v == values[0] for v in values):
                scalars[key] = values[0]  # type: ignore[assignment]
            elif all(v is not None for v in values):
                scalars[key] = float(np.average(np.asarray(values, dtype=np.float64), weights=np.asarray(sizes, dtype=np.float64)))
        return cls(
            iterations=cat([p.iterations for p in parts]),
            dist_comps=cat([p.dist_comps for p in parts]),
            extra={key: np.concatenate([np.atleast_1d(p.extra[key]) for p in parts]) for key in extra_keys},
            scalars=scalars,
        )


def time_each(
    call: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]], Q: np.ndarray, k: int, clock: Callable[[], int]
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """`call(q, k)` -> (array, array) for each row q of Q, passed as a (1, d) view, each call
    alone between two readings of `clock` (an integer counter, nanoseconds). Returns the first
    and the second arrays of every call, in order, and the latencies (int64, clock units).

    The loop holds nothing but the call, its clock pair and list appends. Each answer is
    unpacked at once, so the loop keeps no container object alive: it never sets off the
    garbage collector, which a bare loop that drops its answers does not either.
    """
    firsts: list[np.ndarray] = []
    seconds: list[np.ndarray] = []
    latencies: list[int] = []
    first, second, note = firsts.append, seconds.append, latencies.append
    for q in Q[:, None, :]:
        start = clock()
        a, b = call(q, k)
        end = clock()
        note(end - start)
        first(a)
        second(b)
    return firsts, seconds, np.array(latencies, dtype=np.int64)


def join_rows(parts: Sequence[np.ndarray], k: int) -> np.ndarray:
    """One (n, k) array of n small C-contiguous arrays of k values each and one dtype (one
    query's answer each), joined as bytes: about six times faster than `np.concatenate` on a
    thousand tiny arrays, so gathering a single-query loop's answers stays cheap beside it."""
    if not parts:
        return np.empty((0, k))
    joined = np.frombuffer(b"".join(parts), dtype=parts[0].dtype)  # a non-contiguous part raises
    return joined.reshape(len(parts), k)


#: the kinds of work a Cost counts, each timed on the running machine by the harness's probe
COST_KINDS = ("matmul", "scan", "pointwise")


@dataclass(frozen=True)
class Cost:
    """An adapter's own description of its work, from which the harness estimates, before a
    run, how long a configuration takes (harness/plan/cost.py times each kind on the machine).

    Work is counted by kind, in units the probe measures:
    - "matmul": a distance of `dimension` floats inside a blocked matrix product (brute force,
      a potential's full evaluation);
    - "scan": a distance of `dimension` floats computed one vector at a time, streaming or
      hopping through memory (inverted lists, graph walks, a matrix-vector product);
    - "pointwise": one elementwise tensor operation on one element (a potential's psi chain).
    `query` is the work of one query in a batch, `build` of building the index. Relative
    factors inside a hint (a heap per distance, a cache miss per hop) are measured once by the
    adapter's author; the harness refines the whole estimate by what it measures as it runs.
    """

    query: Mapping[str, float]
    build: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Control:
    """One control of an adapter: query values that switch off one part under test (`switch`,
    e.g. {"ascent": "none"}) and the query parameters that mean nothing once it is off
    (`resets`: the control leaves them at their defaults, so configurations differing only in
    them share one control)."""

    switch: Mapping[str, Any]
    resets: tuple[str, ...] = ()

    def query_of(self, query: Mapping[str, Any]) -> dict[str, Any]:
        """The query parameters of `query`'s control of this kind."""
        kept = {k: v for k, v in query.items() if k not in self.resets}
        return {**kept, **self.switch}

    def matches(self, query: Mapping[str, Any]) -> bool:
        """Whether `query` is a control of this kind (the switch is set)."""
        return bool(self.switch) and all(query.get(k) == v for k, v in self.switch.items())


class Adapter(abc.ABC):
    """Base class of every algorithm adapter.

    Subclasses declare `build_params` and `query_params`, and implement `_fit` and `_search`.
    The constructor takes the build parameters plus `device`, `threads` and `seed`;
    `set_query_params` takes the query parameters.
    """

    build_params: ClassVar[dict[str, Param]] = {}
    query_params: ClassVar[dict[str, Param]] = {}
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    #: the dataset distances the adapter serves (`harness.data.distances`): angular data arrive
    #: normalised, so Euclidean search serves them; "dot" (largest inner product) needs its own code
    metrics: ClassVar[tuple[str, ...]] = ("euclidean", "angular")
    #: set by the registry: the name the adapter is registered under
    name: ClassVar[str] = ""
    #: bumped when the adapter's answers change meaning for the same parameters; part of the
    #: record key when > 0, so that records of an earlier revision are recomputed, not reused
    #: (it separates meanings: an answer that means something else is a new measurement; any edit of the
    #: code, meaning kept or not, is caught by the record's code fingerprint, algorithms/fingerprint.py)
    revision: ClassVar[int] = 0
    #: every control of the method, the primary one first (empty: the algorithm has none). A
    #: subclass declares either `controls` or, for a single control, `control_switch` (and
    #: `control_resets`); the other form is derived from it (`__init_subclass__`). See `controls_of`.
    controls: ClassVar[tuple[Control, ...]] = ()
    #: the primary control's query values that switch off the part of the method under test
    #: (e.g. {"ascent": "none"}); empty for algorithms without a control
    control_switch: ClassVar[Mapping[str, Any]] = {}
    #: the primary control's resets (`Control.resets`)
    control_resets: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if "controls" in own:
            cls.controls = tuple(cls.controls)
            primary = cls.controls[0] if cls.controls else Control({})
            cls.control_switch, cls.control_resets = dict(primary.switch), tuple(primary.resets)
        elif "control_switch" in own or "control_resets" in own:
            cls.controls = (Control(dict(cls.control_switch), tuple(cls.control_resets)),) if cls.control_switch else ()

    def __init__(
        self, *, device: str = "cpu", threads: int = 1, seed: int = 0, metric: str = "euclidean", **params: Any
    ) -> None:
        owner = self.name or type(self).__name__
        if device not in self.devices:
            raise ParameterError(
                f"{owner}: device {device!r} is not supported", f"supported devices: {', '.join(self.devices)}"
            )
        if metric not in self.metrics:
            raise ParameterError(
                f"{owner}: the {metric!r} distance is not served", f"distances it serves: {', '.join(self.metrics)}"
            )
        #: the dataset's distance; "dot": neighbours by largest inner product, distances returned as -q.x
        self.metric = metric
        if threads < 1:
            raise ParameterError(f"{owner}: threads must be >= 1, got {threads}")
        self.device = device
        self.threads = threads
        self.seed = seed
        self.params = validate_params(owner, self.build_params, params, "build")
        self._chosen_build = tuple(params)
        self.query_values = validate_params(owner, self.query_params, {}, "query") if self._defaults_complete() else {}
        self.n_train = 0
        self.dimension = 0
        self._stats = SearchStats()

    def _defaults_complete(self) -> bool:
        return all(not p.required for p in self.query_params.values())

    # -- lifecycle -------------------------------------------------------------------------
    def fit(self, X: np.ndarray) -> None:
        """Build the index on `X` (n, d) float32; the query parameters in force (the defaults,
        until `set_query_params`) are pushed into it."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        self.n_train, self.dimension = X.shape
        self._fit(X)
        if self.query_values:
            self._apply_query_params(self.query_values)

    def set_query_params(self, **params: Any) -> None:
        """Validate and apply query parameters; unspecified ones take their defaults."""
        self.query_values = validate_params(self.name or type(self).__name__, self.query_params, params, "query")
        self._chosen_query = tuple(params)
        self.check_query_params(self.query_values)
        self._apply_query_params(self.query_values)

    def search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (ids int64 (nq, k), distances float32 (nq, k)), nearest first; -1 for missing."""
        Q = self._checked_queries(Q, k)
        self._stats = SearchStats()
        with self._search_scope():
            ids, dists = self._search(Q, k)
        return np.asarray(ids, dtype=np.int64), np.asarray(dists, dtype=np.float32)

    def search_each(
        self, Q: np.ndarray, k: int, clock: Callable[[], int] = time.perf_counter_ns
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Search the rows of Q one query per call, each call timed alone by `clock`.

        Returns (ids, distances) as `search` would, and each query's latency in `clock`'s
        units (int64, nanoseconds for the default). `stats()` afterwards covers all rows.
        Per-configuration work (checks, scopes, parameters) happens once, outside the timed
        calls; see `_search_each`.
        """
        Q = self._checked_queries(Q, k)
        self._stats = SearchStats()
        with self._search_scope():
            ids, dists, latencies = self._search_each(Q, k, clock)
        n = len(Q)
        return (
            np.asarray(ids, dtype=np.int64).reshape(n, k),
            np.asarray(dists, dtype=np.float32).reshape(n, k),
            np.asarray(latencies, dtype=np.int64),
        )

    def _checked_queries(self, Q: np.ndarray, k: int) -> np.ndarray:
        if k < 1:
            raise ParameterError(f"{self.name}: k must be >= 1, got {k}")
        if k > self.n_train:
            raise ParameterError(
                f"{self.name}: k = {k} is larger than the number of points ({self.n_train})",
                "lower --count",
            )
        self._check_k(k)
        return np.ascontiguousarray(Q, dtype=np.float32)

    def stats(self) -> SearchStats:
        """Per-query statistics of the last `search` or `search_each` (iterations, distance computations, ...)."""
        return self._stats

    # -- descriptive -----------------------------------------------------------------------
    @property
    def label(self) -> str:
        """A short label from the parameters the sweep chose, e.g. `hnswlib(M=16,ef_construction=200) ef=40`.

        Parameters left at their defaults are not repeated (the record holds every value), nor
        is a parameter with a single allowed value (a potential adapter's fixed `potential`).
        Values are the ones in use, so a parameter resolved at fit time shows what it became.
        """
        build = ",".join(
            f"{k}={_fmt(self.params[k])}"
            for k in getattr(self, "_chosen_build", ())
            if not (self.build_params[k].choices and len(self.build_params[k].choices) == 1)
        )
        query = " ".join(f"{k}={_fmt(self.query_values[k])}" for k in getattr(self, "_chosen_query", ()))
        text = f"{self.name}({build})" if build else self.name
        return f"{text} {query}".strip()

    def index_bytes(self) -> int | None:
        """Memory held by the index, in bytes, when the adapter can tell; else None."""
        return None

    # -- hooks for subclasses ---------------------------------------------------------------
    @classmethod
    def is_control(cls, query: Mapping[str, Any]) -> bool:
        """Whether these query parameters are a control (any control's switch is set)."""
        return cls.control_matching(query) is not None

    @classmethod
    def control_matching(cls, query: Mapping[str, Any]) -> Control | None:
        """The control these query parameters are (the first whose switch is set), else None."""
        return next((control for control in cls.controls if control.matches(query)), None)

    @classmethod
    def controls_of(cls, query: Mapping[str, Any]) -> list[tuple[Control, dict[str, Any]]]:
        """Every control of this configuration with its query parameters, the primary first;
        empty if the algorithm has none or the configuration is itself a control.

        A control is the same configuration with the part under test switched off, so that a
        number the method reaches can be compared with what it reaches without that part.
        The sweep runs every control beside every configuration (`harness.plan.sweeps.expand`).
        """
        if cls.is_control(query):
            return []
        return [(control, control.query_of(query)) for control in cls.controls]

    @staticmethod
    def describe_switch(switch: Mapping[str, Any]) -> str:
        """`{"ascent": "none"}` -> `ascent=none`: the tag a control's series carries."""
        return ",".join(f"{k}={_fmt(v)}" for k, v in switch.items())

    @classmethod
    def check_config(
        cls, build: Mapping[str, Any], query: Mapping[str, Any], k: int, n_train: int, dimension: int
    ) -> None:
        """Refuse, with a ParameterError, a configuration that cannot work for this k and dataset.

        Called by the command line before anything is built, with the build and query values
        completed with their defaults, so that e.g. a beam narrower than k is reported up front
        instead of failing (or hanging a user's hour) deep in a sweep. The default accepts all.
        """

    @classmethod
    def cost(cls, build: Mapping[str, Any], query: Mapping[str, Any], n_train: int, dimension: int, k: int) -> Cost | None:
        """The work of this configuration (see Cost), with build and query values completed with
        their defaults; None (the default) lets the harness assume one brute-force pass per query."""
        return None

    def check_query_params(self, values: Mapping[str, Any]) -> None:
        """Cross-parameter checks that need the fitted index (e.g. nprobe <= nlist)."""

    def _apply_query_params(self, values: Mapping[str, Any]) -> None:
        """Push query parameters into the index, once per query configuration (and at the end
        of `fit`, with the values then in force); by default `_search` reads `self.query_values`."""

    def _check_k(self, k: int) -> None:
        """Refuse, with a ParameterError, a k these query parameters cannot answer (e.g. a beam
        narrower than k); once per `search` / `search_each` call."""

    def _search_scope(self) -> ContextManager[Any]:
        """Process-wide settings a search runs under (thread counts, autograd off), entered once
        around a whole `search` or a whole `search_each` loop, never per query."""
        return nullcontext()

    def _search_each(
        self, Q: np.ndarray, k: int, clock: Callable[[], int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids (n, k), distances (n, k), latencies (n,)) of one `_search` per row of Q, inside
        `_search_scope`; each query's stats are kept and concatenated into `self._stats`.

        Adapters whose library has a cheaper one-query call override this to time that call
        bare (`time_each`) and to do their conversions and counter reads once afterwards.
        """
        parts: list[SearchStats] = []
        ids, dists, latencies = [], [], np.empty(len(Q), dtype=np.int64)
        for i, q in enumerate(Q[:, None, :]):
            self._stats = SearchStats()
            start = clock()
            found, distance = self._search(q, k)
            latencies[i] = clock() - start
            ids.append(np.asarray(found, dtype=np.int64))
            dists.append(np.asarray(distance, dtype=np.float32))
            parts.append(self._stats)
        self._stats = SearchStats.concat(parts, [1] * len(parts))
        if not ids:
            return np.empty((0, k), dtype=np.int64), np.empty((0, k), dtype=np.float32), latencies
        return np.concatenate(ids), np.concatenate(dists), latencies

    @abc.abstractmethod
    def _fit(self, X: np.ndarray) -> None: ...

    @abc.abstractmethod
    def _search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
