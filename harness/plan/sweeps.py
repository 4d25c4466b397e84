"""Sweep configurations: which algorithms run with which parameters.

A sweep file is YAML in ann-benchmarks' spirit. Each top-level key names an entry; an entry
runs one registered algorithm (its own name, or `algorithm:`) over the Cartesian product of
its build parameters, and on each built index over the product of its query parameters:

    faiss-ivf:
      build: {nlist: [64, 256]}
      query: {nprobe: [1, 4, 16]}
      large:                       # replaces build/query when train has >= 200k points
        build: {nlist: [1024, 4096]}
      max_queries: 500             # optional: a documented subset of the test queries
      datasets: [uniform-64-euclidean]   # optional: run only on these datasets

Every parameter is checked against the adapter's declared parameters before anything runs;
errors name the file, the line and the key. A combination of valid values that cannot run
together (nprobe above one of the nlist values) is skipped, with the reason in the plan's notes,
and the rest of the grid runs; an entry none of whose combinations can run is refused.
"""
from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from algorithms import registry
from algorithms.base import validate_params
from algorithms.registry import AlgorithmSpec
from harness.errors import ConfigError, HarnessError

DEFAULT_SWEEP_FILE = Path(__file__).with_name("sweeps") / "default.yaml"
LARGE_TRAIN = 200_000
ENTRY_KEYS = ("algorithm", "build", "query", "large", "max_queries", "datasets", "description")


@dataclass
class BuildConfig:
    """One index to build and the query configurations to run on it."""

    entry: str
    spec: AlgorithmSpec
    build_params: dict[str, Any]
    query_params: list[dict[str, Any]]
    max_queries: int | None = None
    source: str = ""
    #: the threads this index is built and searched with (None: the run's `--threads`); set
    #: when `--threads` lists several counts (`harness.plan.axes.with_axes`)
    threads: int | None = None
    #: each query configuration's batch size, parallel to `query_params` (empty: the run's
    #: `--mode`/`--batch-size` default; None in it: the whole set in one call)
    batch_sizes: list[int | None] = field(default_factory=list)

    @property
    def algorithm(self) -> str:
        return self.entry


@dataclass
class SweepEntry:
    name: str
    algorithm: str
    build: dict[str, list[Any]]
    query: dict[str, list[Any]]
    large: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    max_queries: int | None = None
    source: str = ""
    #: dataset names this entry is for (None: every dataset)
    datasets: list[str] | None = None


class _LineLoader(yaml.SafeLoader):
    """Safe YAML loader that remembers the line of every mapping key (for error messages)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = _LinedDict(loader.construct_mapping(node, deep=True))
    mapping.lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    return mapping


class _LinedDict(dict):
    lines: dict[str, int]


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _where(source: str, mapping: Any, key: str) -> str:
    line = getattr(mapping, "lines", {}).get(key)
    return f"{source}, line {line}" if line else source


def read_sweep_file(path: Path) -> list[SweepEntry]:
    """Parse and check a sweep file; ConfigError with file, line and key on any problem."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read sweep file {path}: {exc.strerror or exc}") from None
    try:
        document = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"sweep file {source}{where}: not valid YAML ({problem})",
            f"fix the YAML at that place; the form to follow is in {DEFAULT_SWEEP_FILE}",
        ) from None
    if document is None:
        raise ConfigError(f"sweep file {source} is empty", "it needs one entry per algorithm, see harness/plan/sweeps/default.yaml")
    if not isinstance(document, dict):
        raise ConfigError(f"sweep file {source}: the top level must be a mapping of entry names to entries")
    return [_parse_entry(name, body, document, source) for name, body in document.items()]


def _parse_entry(name: Any, body: Any, parent: Any, source: str) -> SweepEntry:
    where = _where(source, parent, name)
    if body is None:
        body = _LinedDict()
    if not isinstance(body, dict):
        raise ConfigError(f"sweep file {where}: entry {name!r} must be a mapping with build/query keys")
    for key in body:
        if key not in ENTRY_KEYS:
            close = difflib.get_close_matches(str(key), ENTRY_KEYS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(ENTRY_KEYS)}"
            raise ConfigError(f"sweep file {_where(source, body, key)}: unknown key {key!r} in entry {name!r}", hint)
    algorithm = str(body.get("algorithm", name))
    try:
        registry.get(algorithm)
    except ConfigError as exc:
        raise ConfigError(f"sweep file {where}: {exc.message}", exc.hint) from None
    large = body.get("large") or {}
    if not isinstance(large, dict) or set(large) - {"build", "query"}:
        raise ConfigError(f"sweep file {_where(source, body, 'large')}: `large` may only hold build and query")
    max_queries = body.get("max_queries")
    if max_queries is not None and (not isinstance(max_queries, int) or isinstance(max_queries, bool) or max_queries < 1):
        raise ConfigError(f"sweep file {_where(source, body, 'max_queries')}: max_queries must be a positive integer")
    datasets = body.get("datasets")
    if datasets is not None and (not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets)):
        raise ConfigError(f"sweep file {_where(source, body, 'datasets')}: datasets must be a list of dataset names")
    return SweepEntry(
        name=str(name),
        algorithm=algorithm,
        build=_param_lists(body, "build", source),
        query=_param_lists(body, "query", source),
        large={part: _param_lists(large, part, source) for part in ("build", "query") if part in large},
        max_queries=max_queries,
        source=where,
        datasets=datasets,
    )


def _param_lists(body: Mapping[str, Any], part: str, source: str) -> dict[str, list[Any]]:
    params = body.get(part) or {}
    if not isinstance(params, dict):
        raise ConfigError(f"sweep file {_where(source, body, part)}: {part} must be a mapping of parameter: [values]")
    lists: dict[str, list[Any]] = {}
    for key, values in params.items():
        values = values if isinstance(values, list) else [values]
        if not values:
            raise ConfigError(f"sweep file {_where(source, params, key)}: {part} parameter {key!r} has no values")
        for value in values:
            if isinstance(value, (dict, list)):
                raise ConfigError(
                    f"sweep file {_where(source, params, key)}: {part} parameter {key!r} values must be scalars, got {value!r}"
                )
        lists[str(key)] = values
    return lists


def entry_from_spec(spec: AlgorithmSpec) -> SweepEntry:
    """The sweep an algorithm registered for itself, or one configuration at its defaults."""
    body = dict(spec.sweep or {})
    return SweepEntry(
        name=spec.name,
        algorithm=spec.name,
        build={k: list(v) if isinstance(v, (list, tuple)) else [v] for k, v in (body.get("build") or {}).items()},
        query={k: list(v) if isinstance(v, (list, tuple)) else [v] for k, v in (body.get("query") or {}).items()},
        large={p: {k: list(v) for k, v in d.items()} for p, d in (body.get("large") or {}).items()},
        max_queries=body.get("max_queries"),
        source=f"sweep registered by {spec.adapter.__module__}",
    )


def default_entries(selected: Iterable[str] | None = None) -> list[SweepEntry]:
    """Entries of the default sweep file plus every registered algorithm that declares a sweep.

    With `selected`, only those names, each from the file when it has an entry, else from the
    algorithm's own registration (unknown names raise ConfigError with suggestions).
    """
    from_file = {entry.name: entry for entry in read_sweep_file(DEFAULT_SWEEP_FILE)}
    specs = registry.all_algorithms()
    if selected is None:
        names = list(from_file) + [
            n for n, s in specs.items() if s.sweep is not None and s.default_run and n not in from_file
        ]
    else:
        names = list(selected)
    entries = []
    for name in names:
        if name in from_file:
            entries.append(from_file[name])
        else:
            entries.append(entry_from_spec(registry.get(name)))
    return entries


def select(entries: list[SweepEntry], names: Iterable[str]) -> list[SweepEntry]:
    """Entries of a user's sweep file restricted to `names` (entry or algorithm names)."""
    wanted = list(names)
    chosen = [e for e in entries if e.name in wanted or e.algorithm in wanted]
    missing = [n for n in wanted if not any(e.name == n or e.algorithm == n for e in entries)]
    if missing:
        close = difflib.get_close_matches(missing[0], [e.name for e in entries], n=3)
        hint = f"did you mean {' or '.join(close)}?" if close else "entries: " + ", ".join(e.name for e in entries)
        raise ConfigError(f"algorithm {missing[0]!r} has no entry in the sweep file", hint)
    return chosen


def _product(lists: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(lists)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(lists[k] for k in keys))]


def expand(entries: list[SweepEntry], n_train: int, dataset: str | None = None) -> list[BuildConfig]:
    """Build configurations for a dataset of `n_train` points, every parameter checked.

    Entries restricted to other datasets (`datasets:`) are left out when `dataset` is given.
    """
    configs = []
    for entry in entries:
        if dataset is not None and entry.datasets is not None and dataset not in entry.datasets:
            continue
        spec = registry.get(entry.algorithm)
        build, query = entry.build, entry.query
        if n_train >= LARGE_TRAIN and entry.large:
            build = entry.large.get("build", build)
            query = entry.large.get("query", query)
        query_list = with_controls(spec, _product(query))
        for build_params in _product(build):
            full_build = {**spec.fixed, **build_params}
            _check(entry, spec, full_build, query_list)
            configs.append(
                BuildConfig(entry.name, spec, full_build, query_list, entry.max_queries, entry.source)
            )
    return configs


def with_controls(spec: AlgorithmSpec, queries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The query configurations, each followed by every control the algorithm defines for it.

    A control is the same configuration with one part under test switched off (for the
    potential method: `ascent=none`, no climb; `potential-1-fixedpoint` also has the note's
    rule); configurations that share a control run it once.
    """
    out: list[dict[str, Any]] = []
    for query in queries:
        controls = [control_query for _, control_query in spec.adapter.controls_of(query)]
        for item in (query, *controls):
            if item not in out:
                out.append(item)
    return out


def _check(entry: SweepEntry, spec: AlgorithmSpec, build: dict[str, Any], queries: list[dict[str, Any]]) -> None:
    owner = spec.name
    try:
        validate_params(owner, spec.adapter.build_params, build, "build")
        for query in queries:
            validate_params(owner, spec.adapter.query_params, query, "query")
    except HarnessError as exc:
        raise ConfigError(f"{entry.source}: {exc.message}", exc.hint) from None


def check_configs(
    configs: list[BuildConfig], k: int, n_train: int, dimension: int, drop_invalid: bool = False,
    distance: str | None = None, named: bool = False,
) -> tuple[list[BuildConfig], list[str]]:
    """Run each adapter's `check_config` (k, dataset size) on every configuration, up front.

    A grid's cross product may hold combinations that cannot run (nprobe above some of the
    nlist values, ef < k) beside valid ones: those are left out, and the returned notes say
    which and why (`skipped ...` in a user's sweep, `left out ...` in the built-in default
    sweep). A user's sweep entry with no valid combination at all is refused with a
    ConfigError naming the file, the entry and the first reason; the default sweep (which the
    user did not write for this k, `drop_invalid`) leaves such an entry out with its notes. An
    algorithm that does not serve the dataset's `distance` (its adapter's `metrics`) is left
    out with a note from the default sweep, and refused when the user chose it (`named`:
    --algorithms) or wrote the sweep.
    """
    kept, notes = [], []
    valid: dict[str, int] = {}  # entry -> combinations that can run
    tried: dict[str, int] = {}  # entry -> combinations checked
    first_problem: dict[str, tuple[BuildConfig, dict[str, Any], HarnessError]] = {}
    for config in configs:
        served = config.spec.adapter.metrics
        if distance is not None and distance not in served:
            label = config.entry if config.entry == config.spec.name else f"{config.entry} ({config.spec.name})"
            why = f"does not serve the {distance!r} distance of this dataset (it serves {', '.join(served)})"
            message = f"{label} {why}"
            if drop_invalid and not named:
                note = f"left out {label}: it {why}"
                notes += [note] if note not in notes else []
                continue
            raise ConfigError(f"{config.source}: {message}",
                              f"leave {config.entry} out, or run it on a {' or '.join(served)} dataset")
        queries = []
        valid.setdefault(config.entry, 0)
        tried[config.entry] = tried.get(config.entry, 0) + len(config.query_params)
        for query in config.query_params:
            problem = _config_problem(config, query, k, n_train, dimension)
            if problem is None:
                queries.append(query)
                valid[config.entry] += 1
                continue
            first_problem.setdefault(config.entry, (config, query, problem))
            if drop_invalid:
                note = f"left out {config.entry} {query}: {problem.message}"
            else:
                note = f"skipped {config.entry} {_params(config.build_params, query)}: {problem.message}"
            notes += [note] if note not in notes else []
        if queries:
            kept.append(BuildConfig(config.entry, config.spec, config.build_params, queries, config.max_queries, config.source))
    if not drop_invalid:
        for entry, count in valid.items():
            if count == 0 and entry in first_problem:
                config, query, problem = first_problem[entry]
                raise ConfigError(f"{config.source}: entry {entry!r} has no valid combination of its build and query "
                                  f"parameters (none of {tried[entry]} can run); the first, "
                                  f"{_params(config.build_params, query)}: {problem.message}", problem.hint)
    return kept, notes


def _params(build: Mapping[str, Any], query: Mapping[str, Any]) -> str:
    """A combination as the user wrote it in the sweep: name=value, build then query."""
    return " ".join(f"{key}={value}" for key, value in {**build, **query}.items()) or "(defaults)"


def _config_problem(config: BuildConfig, query: dict[str, Any], k: int, n_train: int, dimension: int) -> HarnessError | None:
    adapter = config.spec.adapter
    owner = config.spec.name
    build = validate_params(owner, adapter.build_params, config.build_params, "build")
    full_query = validate_params(owner, adapter.query_params, query, "query")
    try:
        adapter.check_config(build, full_query, k, n_train, dimension)
    except HarnessError as exc:
        return exc
    return None
