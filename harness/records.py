"""The result store: one record per (algorithm, build params, query params, mode, k, queries).

A record is two plain files under `results/<dataset>/<algorithm>/`:
- `<stem>.json`: parameters, metrics, status and provenance (readable by any JSON tool);
- `<stem>.h5`: the per-query arrays (ids, distances, iterations, dist_comps, latencies, ...).

The JSON is written last, to a temporary name then renamed, and names the SHA-256 of the
arrays file: a record whose JSON is missing, unparsable, or whose arrays do not match the
checksum is not a record (it reads as "incomplete" and is recomputed).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import h5py
import numpy as np

from harness.errors import HarnessError
from harness.files import atomic_write, sha256_file, write_bytes_durably

SCHEMA_NAME = "gpnn-record"
#: the version records are written with; older ones are migrated on read (MIGRATIONS), never
#: recomputed or overwritten; newer ones (a newer harness wrote them) are left alone
SCHEMA_VERSION = 5
SCHEMA = f"{SCHEMA_NAME}/{SCHEMA_VERSION}"
#: the folder beside an algorithm's records where records made by code since changed are moved
#: (`supersede`); no reader of records looks into it
SUPERSEDED = "superseded"

_NONE = type(None)
_REQUIRED = object()


@dataclass(frozen=True)
class Field:
    """One field of the record document: its JSON types, default (if optional) and meaning."""

    name: str
    types: tuple[type, ...]
    help: str
    default: Any = _REQUIRED

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


#: The record document, declared once: the runner writes it, the report reads it, tests build
#: theirs through it (`new_document`). `schema` and `arrays` are filled by `write_record`.
FIELDS: tuple[Field, ...] = (
    Field("schema", (str,), "gpnn-record/<version>"),
    Field("status", (str,), "ok, failed, timeout, or skipped (did not fit the budget: `error` says why)"),
    Field("error", (str, _NONE), "why it failed, or null", None),
    Field("dataset", (str,), "the dataset's canonical name"),
    Field("distance", (str,), "euclidean, angular or dot (the record's distances are then the negative inner product)"),
    Field("algorithm", (str,), "the sweep entry (usually the registered algorithm's name)"),
    Field("adapter", (str,), "the adapter class"),
    Field("label", (str,), "a short label of the configuration"),
    Field("build_params", (dict,), "build parameters as the sweep chose them"),
    Field("query_params", (dict,), "query parameters, every value (defaults completed)"),
    Field("mode", (str,), "batch or single (single: one query per call, the same as batch_size 1)"),
    Field("batch_size", (int, _NONE), "queries per timed search call: the test set cut into consecutive batches of "
          "this size (the last one shorter); 1 is single mode; null: the whole set in one call", None),
    Field("k", (int,), "k of recall@k"),
    Field("n_queries", (int,), "test queries measured (the first n)"),
    Field("n_queries_total", (int,), "test queries in the dataset"),
    Field("n_train", (int,), "points in the train set"),
    Field("dimension", (int,), "vector dimension"),
    Field("device", (str,), "cpu or cuda"),
    Field("threads", (int,), "threads given to every library"),
    Field("seed", (int,), "the run's seed"),
    Field("runs", (int,), "timed repetitions"),
    Field("isolation", (str,), "process or none"),
    Field("executor", (str,), "local or ray"),
    Field("key", (str,), "the record's identity (record_key)"),
    Field("role", (str, _NONE), "method or control for algorithms with a control, else null", None),
    Field("control_switch", (str, _NONE), "what the control switches off, e.g. ascent=none", None),
    Field("control_query_params", (dict, _NONE), "a method's control's query parameters", None),
    Field("controls", (list, _NONE), "a method's controls, each {\"switch\": \"ascent=none\", \"query_params\": {...}}: "
          "the same configuration with one part under test switched off (the first is control_switch's)", None),
    Field("revision", (int,), "the adapter's revision (answers whose meaning changed get a new one)", 0),
    Field("code_fingerprint", (str, _NONE), "a hash of the parsed source of the code that made the numbers (the "
          "adapter's module and the project modules it imports, or the plugin file); null: made before fingerprints, "
          "so stale", None),
    Field("estimated_s", (float, _NONE), "the cost model's estimate of this query configuration's seconds "
          "(warm-up, timed runs, scoring), made before it ran (harness/plan/cost.py)", None),
    Field("measured_s", (float, _NONE), "the seconds this query configuration took, as the harness saw them", None),
    Field("estimated_build_s", (float, _NONE), "the estimate of the build configuration's start-up and build", None),
    Field("warmup_queries", (int, _NONE), "queries searched once before the timed runs", None),
    Field("budget_note", (str, _NONE), "how the budget shaped this record: a query subset sized to it, or why it "
          "was skipped (null: no budget applied)", None),
    Field("metrics", (dict,), "measurements (empty for a failed or skipped record)"),
    Field("provenance", (dict,), "machine, libraries, commit, dataset checksum, command, times"),
    Field("arrays", (dict,), "the arrays file and its SHA-256"),
)
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
#: fields `write_record` fills in; a document made before writing has neither
WRITTEN_BY_STORE = ("schema", "arrays")


def new_document(**values: Any) -> dict[str, Any]:
    """A record document from `values`, optional fields completed, every field checked."""
    document = {
        f.name: values[f.name] if f.name in values else f.default
        for f in FIELDS
        if f.name in values or not (f.required or f.name in WRITTEN_BY_STORE)
    }
    check_fields(values)
    check_document(document)
    return document


def check_fields(document: Mapping[str, Any]) -> None:
    """Raise ValueError when a field is not declared in FIELDS or a required one is missing."""
    unknown = sorted(set(document) - set(FIELD_NAMES))
    missing = [f.name for f in FIELDS if f.required and f.name not in document and f.name not in WRITTEN_BY_STORE]
    if unknown or missing:
        raise ValueError(f"record document (see harness.records.FIELDS): unknown fields {unknown}, missing fields {missing}")


def check_document(document: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first field whose value is not of a declared type."""
    for field_ in FIELDS:
        if field_.name in document and not isinstance(document[field_.name], field_.types):
            expected = " or ".join("null" if t is _NONE else t.__name__ for t in field_.types)
            raise ValueError(f"record field {field_.name!r}: expected {expected}, got {document[field_.name]!r}")


def _v1_to_v2(document: dict[str, Any]) -> dict[str, Any]:
    """Version 2 added the control fields: a version-1 record ran no controls (role null)."""
    for name in ("role", "control_switch", "control_query_params", "revision"):
        document.setdefault(name, next(f.default for f in FIELDS if f.name == name))
    return document


def _v2_to_v3(document: dict[str, Any]) -> dict[str, Any]:
    """Version 3 added the cost model's estimate, the measured seconds, the warm-up and the
    budget note: a version-2 record was made without an estimate or a budget (all null)."""
    for name in ("estimated_s", "measured_s", "estimated_build_s", "warmup_queries", "budget_note"):
        document.setdefault(name, None)
    return document


def _v3_to_v4(document: dict[str, Any]) -> dict[str, Any]:
    """Version 4 added the code fingerprint (a version-3 record has none: its code is unknown,
    so it counts as stale) and the list of a method's controls (a version-3 method had one)."""
    document.setdefault("code_fingerprint", None)
    if "controls" not in document:
        single = document.get("control_query_params")
        document["controls"] = (
            [{"switch": document.get("control_switch"), "query_params": single}]
            if document.get("role") == "method" and single is not None else None
        )
    return document


def _v4_to_v5(document: dict[str, Any]) -> dict[str, Any]:
    """Version 5 added the batch size: a version-4 record searched the whole set in one call
    (null) or, in single mode, one query per call (1)."""
    document.setdefault("batch_size", 1 if document.get("mode") == "single" else None)
    return document


#: MIGRATIONS[v] turns a version-v document into a version v+1 one (as asv migrates its results)
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4,
                                                                     4: _v4_to_v5}


class UnknownSchema(Exception):
    """A record of a schema this harness cannot read (a newer version): left as it is."""


def schema_version(document: Mapping[str, Any]) -> int | None:
    """The version of a `gpnn-record/<n>` document, None if it is not one."""
    schema = document.get("schema")
    prefix = f"{SCHEMA_NAME}/"
    if not isinstance(schema, str) or not schema.startswith(prefix) or not schema[len(prefix):].isdigit():
        return None
    return int(schema[len(prefix):])


def migrate(document: dict[str, Any]) -> dict[str, Any]:
    """The document in today's schema: each older version's migration in turn."""
    version = schema_version(document)
    if version is None:
        raise ValueError("not a gpnn-record document")
    if version > SCHEMA_VERSION:
        raise UnknownSchema(f"schema {document['schema']} is newer than this harness's {SCHEMA}")
    while version < SCHEMA_VERSION:
        document = MIGRATIONS[version](document)
        version += 1
    document["schema"] = SCHEMA
    return document


def record_key(
    algorithm: str,
    build_params: Mapping[str, Any],
    query_params: Mapping[str, Any],
    mode: str,
    k: int,
    n_queries: int,
    device: str = "cpu",
    threads: int = 1,
    revision: int = 0,
    batch_size: int | None = None,
) -> str:
    """A stable identity for a measurement: what decides whether a record can be reused.

    Device and threads are part of it: a CUDA run and a CPU run of the same parameters are
    two measurements, and one must never overwrite the other. So is the adapter's revision
    when it is not 0: answers whose meaning changed are computed again, never reused.
    The revision separates meanings; a change of the code itself is caught by the record's
    `code_fingerprint` (algorithms/fingerprint.py), which is not part of the key: a record of
    changed code is stale and moved aside (`supersede`), not kept beside its replacement.

    So is the batch size when it cuts the set (`batch_size` > 1): the whole set in one call
    (None) and one query per call (1, which is `mode` "single") are told apart by `mode`
    alone, so the keys of records made before batch sizes existed stay the same.
    """
    if batch_size == 1 and mode != "single" or batch_size is not None and batch_size < 1:
        raise ValueError(f"batch size {batch_size} with mode {mode!r}: 1 is single mode, larger cuts the set")
    identity = [algorithm, dict(build_params), dict(query_params), mode, k, n_queries, device, threads]
    payload = json.dumps(
        identity + ([revision] if revision else []) + ([{"batch_size": batch_size}] if batch_size and batch_size > 1 else []),
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def record_stem(algorithm: str, build_params: Mapping[str, Any], query_params: Mapping[str, Any], key: str) -> str:
    """A file stem a person can read: the parameters, shortened, then the key."""
    parts = [f"{k}={v}" for k, v in {**build_params, **query_params}.items()]
    readable = re.sub(r"[^A-Za-z0-9=.,_-]+", "-", "_".join(parts))[:80].strip("-_")
    return f"{readable}__{key}" if readable else key


def safe_component(name: str) -> str:
    """A dataset or algorithm name made safe as one path component (no separators, no '..')."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip(".")
    return cleaned or "_"


def record_dir(results_dir: Path, dataset: str, algorithm: str) -> Path:
    return Path(results_dir) / safe_component(dataset) / safe_component(algorithm)


def write_record(directory: Path, stem: str, document: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> Path:
    """Write arrays then the JSON document atomically; return the JSON path.

    `document` is one of `new_document`'s (ValueError for a field not declared in FIELDS or of
    the wrong type). Raises HarnessError when the directory cannot be written, before anything
    is replaced.
    """
    check_fields(document)
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        arrays_path = directory / f"{stem}.h5"
        atomic_write(arrays_path, lambda tmp: _write_arrays(tmp, arrays), suffix=".h5.tmp")
        document = dict(document)
        document["schema"] = SCHEMA
        document["arrays"] = {"file": arrays_path.name, "sha256": sha256_file(arrays_path)}
        check_document(document)
        json_path = directory / f"{stem}.json"
        text = json.dumps(_jsonable(document), indent=1, sort_keys=False, allow_nan=False)
        atomic_write(json_path, write_bytes_durably(text.encode()))
        return json_path
    except PermissionError as exc:
        raise HarnessError(
            f"cannot write results into {directory}: {exc.strerror}",
            "choose a writable directory with --results-dir",
        ) from None
    except OSError as exc:
        raise HarnessError(f"cannot write results into {directory}: {exc}", "check the disk and --results-dir") from None


def _write_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    with h5py.File(path, "w") as handle:
        for name, value in arrays.items():
            if value is not None:
                handle.create_dataset(name, data=np.asarray(value), compression="gzip", compression_opts=4)


def _jsonable(value: Any) -> Any:
    """Plain JSON types only; NaN and infinities become null (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


class IncompleteRecord(Exception):
    """A record on disk that is not whole: interrupted write, missing or corrupt arrays."""


def read_record(json_path: Path, verify: bool = True) -> dict[str, Any]:
    """The record's JSON document, with `_path` set; raises IncompleteRecord if it is not whole."""
    json_path = Path(json_path)
    try:
        document = json.loads(json_path.read_text())
    except (OSError, ValueError) as exc:
        raise IncompleteRecord(f"{json_path}: unreadable JSON ({exc})") from None
    if not isinstance(document, dict) or schema_version(document) is None:
        raise IncompleteRecord(f"{json_path}: not a {SCHEMA_NAME} record")
    try:
        document = migrate(document)
    except UnknownSchema as exc:
        raise UnknownSchema(f"{json_path}: {exc}") from None
    arrays = document.get("arrays") or {}
    arrays_path = json_path.parent / str(arrays.get("file", ""))
    if verify:
        if not arrays_path.is_file():
            raise IncompleteRecord(f"{json_path}: arrays file {arrays_path.name} is missing")
        if sha256_file(arrays_path) != arrays.get("sha256"):
            raise IncompleteRecord(f"{json_path}: arrays file {arrays_path.name} does not match its checksum")
    document["_path"] = str(json_path)
    return document


def load_arrays(document: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The per-query arrays of a record read by `read_record`."""
    path = Path(document["_path"]).parent / document["arrays"]["file"]
    with h5py.File(path, "r") as handle:
        return {name: handle[name][()] for name in handle}


def iter_record_files(results_dir: Path, dataset: str | None = None, other_than: str | None = None) -> Iterator[Path]:
    """Record files under `results_dir`: of one dataset, or of all (but the one `other_than` names).
    Records moved aside into a `superseded/` folder are not among them."""
    root = Path(results_dir)
    if dataset is not None:
        root = root / safe_component(dataset)
    skip = Path(results_dir) / safe_component(other_than) if other_than is not None else None
    if root.is_dir():
        yield from sorted(
            p for p in root.rglob("*.json")
            if not p.name.startswith(".") and skip not in p.parents and not is_superseded(p, results_dir)
        )


def is_superseded(path: Path, results_dir: Path) -> bool:
    """Whether `path` lies in a `superseded/` folder of an algorithm's records
    (`<results_dir>/<dataset>/<algorithm>/superseded/...`)."""
    try:
        parts = Path(path).relative_to(results_dir).parts
    except ValueError:
        parts = Path(path).parts[-4:]
    return len(parts) > 3 and parts[2] == SUPERSEDED


def supersede(json_path: Path) -> Path:
    """Move a record (its JSON, then its arrays) into the `superseded/` folder beside it, never
    over another one (a second superseded record of the same stem goes to `superseded/2/`, ...);
    return the JSON's new path. Readers of records never look there; nothing is deleted."""
    json_path = Path(json_path)
    folder = json_path.parent / SUPERSEDED
    number = 1
    while (folder / json_path.name).exists() or (folder / json_path.with_suffix(".h5").name).exists():
        number += 1
        folder = json_path.parent / SUPERSEDED / str(number)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / json_path.name
        json_path.rename(target)  # first: the record leaves the results at once
        arrays = json_path.with_suffix(".h5")
        if arrays.exists():
            arrays.rename(folder / arrays.name)
    except OSError as exc:
        raise HarnessError(f"cannot move the stale record {json_path} into {folder}: {exc}",
                           "check the permissions of the results directory") from None
    return target


def load_records(
    results_dir: Path, dataset: str | None = None, verify: bool = True, problems: list[str] | None = None,
    other_than: str | None = None,
) -> list[dict[str, Any]]:
    """Every whole record under `results_dir` (one dataset, or all but `other_than`); incomplete
    ones go to `problems`."""
    records = []
    for path in iter_record_files(results_dir, dataset, other_than):
        try:
            records.append(read_record(path, verify=verify))
        except (IncompleteRecord, UnknownSchema) as exc:
            if problems is not None:
                problems.append(str(exc))
    return records


def leftover_temporaries(directory: Path, stem: str) -> list[Path]:
    """Temporary files of `stem`'s record left by a writer that was killed mid-write.

    They are never read as records (their names start with a dot); the runner removes them
    before it recomputes or reuses the record, so they do not pile up.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(directory.glob(f".{stem}.*tmp"))
