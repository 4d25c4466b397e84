"""The adapter interface: the only thing a new algorithm writes.

An adapter wraps one nearest-neighbour method. The harness builds it with one set of build
parameters, calls `fit` once, then for each set of query parameters calls `set_query_params`
and `search`. Adapters never see files, clocks, records or plots: the runner owns those.

Parameters are declared up front as `Param` objects so that they can be validated in the
constructor (as scikit-learn does), listed by `python -m harness list`, and checked in sweep
files before anything runs.

All vectors reaching an adapter are float32 and Euclidean: angular datasets are normalised
by the loader, so Euclidean distance on them ranks exactly as cosine distance does.
"""
from __future__ import annotations

import abc
import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

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


#: the kinds of work a Cost counts, each timed on the running machine by the harness's probe
COST_KINDS = ("matmul", "scan", "pointwise")


@dataclass(frozen=True)
class Cost:
    """An adapter's own description of its work, from which the harness estimates, before a
    run, how long a configuration takes (harness/run/cost.py times each kind on the machine).

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


class Adapter(abc.ABC):
    """Base class of every algorithm adapter.

    Subclasses declare `build_params` and `query_params`, and implement `_fit` and `_search`.
    The constructor takes the build parameters plus `device`, `threads` and `seed`;
    `set_query_params` takes the query parameters.
    """

    build_params: ClassVar[dict[str, Param]] = {}
    query_params: ClassVar[dict[str, Param]] = {}
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    #: set by the registry: the name the adapter is registered under
    name: ClassVar[str] = ""
    #: bumped when the adapter's answers change meaning for the same parameters; part of the
    #: record key when > 0, so that records of an earlier revision are recomputed, not reused
    #: (it separates meanings: an answer that means something else is a new measurement; any edit of the
    #: code, meaning kept or not, is caught by the record's code fingerprint, algorithms/fingerprint.py)
    revision: ClassVar[int] = 0
    #: query values that switch off the part of the method under test (e.g. {"ascent": "none"});
    #: empty for algorithms without a control. See `control_of`.
    control_switch: ClassVar[Mapping[str, Any]] = {}
    #: query parameters that mean nothing once the switch is off; the control leaves them at
    #: their defaults, so configurations differing only in them share one control
    control_resets: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, device: str = "cpu", threads: int = 1, seed: int = 0, **params: Any) -> None:
        owner = self.name or type(self).__name__
        if device not in self.devices:
            raise ParameterError(
                f"{owner}: device {device!r} is not supported", f"supported devices: {', '.join(self.devices)}"
            )
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
        """Build the index on `X` (n, d) float32."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        self.n_train, self.dimension = X.shape
        self._fit(X)

    def set_query_params(self, **params: Any) -> None:
        """Validate and apply query parameters; unspecified ones take their defaults."""
        self.query_values = validate_params(self.name or type(self).__name__, self.query_params, params, "query")
        self._chosen_query = tuple(params)
        self.check_query_params(self.query_values)
        self._apply_query_params(self.query_values)

    def search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (ids int64 (nq, k), distances float32 (nq, k)), nearest first; -1 for missing."""
        if k < 1:
            raise ParameterError(f"{self.name}: k must be >= 1, got {k}")
        if k > self.n_train:
            raise ParameterError(
                f"{self.name}: k = {k} is larger than the number of points ({self.n_train})",
                "lower --count",
            )
        Q = np.ascontiguousarray(Q, dtype=np.float32)
        self._stats = SearchStats()
        ids, dists = self._search(Q, k)
        return np.asarray(ids, dtype=np.int64), np.asarray(dists, dtype=np.float32)

    def stats(self) -> SearchStats:
        """Per-query statistics of the last `search` (iterations, distance computations, ...)."""
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
        """Whether these query parameters are a control (the switch is set)."""
        return bool(cls.control_switch) and all(query.get(k) == v for k, v in cls.control_switch.items())

    @classmethod
    def control_of(cls, query: Mapping[str, Any]) -> dict[str, Any] | None:
        """The query parameters of this configuration's control, None if it has none or is one.

        A control is the same configuration with the part under test switched off, so that a
        number the method reaches can be compared with what it reaches without that part.
        The sweep runs it beside every configuration (`harness.run.sweeps.expand`).
        """
        if not cls.control_switch or cls.is_control(query):
            return None
        kept = {k: v for k, v in query.items() if k not in cls.control_resets}
        return {**kept, **cls.control_switch}

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
        """Push query parameters into the index; by default they are read from `self.query_values`."""

    @abc.abstractmethod
    def _fit(self, X: np.ndarray) -> None: ...

    @abc.abstractmethod
    def _search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
