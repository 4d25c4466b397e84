"""The dataset registry: which datasets exist, where they come from, where they live on disk.

Names follow ann-benchmarks (`sift-128-euclidean`, `glove-100-angular`, ...) so that results
can be compared with theirs; short aliases (`sift-128`, `mnist`) save typing. Remote files
come from ann-benchmarks' server, whose base URL can be moved with `GPNN_DATASET_URL` (tests
point it at a local server; a mirror can be used offline). Generated datasets are built
locally by `harness.data.generate` and never downloaded.

Only the distances the harness supports (see `harness.data.distances.SUPPORTED`) are listed;
`lastfm-64-dot` is listed as ann-benchmarks stores it (angular, see datasets.yaml);
ann-benchmarks datasets in other metrics are known by name so that asking for one is refused
with the reason rather than an "unknown dataset".
"""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from harness.data.distances import SUPPORTED
from harness.errors import ConfigError, DatasetError

DEFAULT_BASE_URL = "https://ann-benchmarks.com"
URL_ENV = "GPNN_DATASET_URL"
DATA_DIR_ENV = "GPNN_DATA_DIR"
LIST_HINT = "run `python -m harness datasets list` to see the datasets known by name"
#: the registry's one table: every dataset known by name, generated ones with their generator
TABLE = Path(__file__).with_name("datasets.yaml")


@dataclass(frozen=True)
class DatasetInfo:
    """What the harness knows about a dataset before opening its file.

    `size_bytes` and `sha256` are checked after a download when known; `None` means unknown
    (the file is then trusted only after the loader's structural validation).
    """

    name: str
    distance: str
    dimension: int
    n_train: int
    n_test: int
    url: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    generated: bool = False
    description: str = ""
    #: for a generated dataset, its recipe: {"kind": a key of generate.GENERATORS, **arguments}
    generator: Mapping[str, Any] | None = field(default=None, compare=False)


def _read_table(path: Path) -> dict[str, DatasetInfo]:
    """The datasets of the table file: remote ones (URL filled in by `resolve`, so that
    GPNN_DATASET_URL is read when it is used) and generated ones with their generator."""
    table = yaml.safe_load(path.read_text())
    infos = {}
    for kind in ("remote", "generated"):
        for name, entry in (table.get(kind) or {}).items():
            generator = entry.pop("generator", None)
            infos[name] = DatasetInfo(name, generated=kind == "generated", generator=generator, **entry)
    return infos


_REGISTRY: dict[str, DatasetInfo] = _read_table(TABLE)

# ann-benchmarks datasets whose metric the harness does not implement: refused with the reason.
_UNSUPPORTED: dict[str, str] = {
    "kosarak-jaccard": "jaccard",
    "movielens10m-jaccard": "jaccard",
    "sift-256-hamming": "hamming",
    "word2bits-800-hamming": "hamming",
}

_EXTRA_ALIASES: dict[str, str] = {
    "sift": "sift-128-euclidean",
    "gist": "gist-960-euclidean",
    "fashion-mnist": "fashion-mnist-784-euclidean",
    "mnist": "mnist-784-euclidean",
    "nytimes": "nytimes-256-angular",
    "deep-image": "deep-image-96-angular",
    "deep": "deep-image-96-angular",
    "glove": "glove-100-angular",
    "random-xs": "random-xs-20-euclidean",
    "random-xs-20": "random-xs-20-euclidean",
    "random-s": "random-s-100-euclidean",
    "random-s-100": "random-s-100-euclidean",
    "uniform-64": "uniform-64-euclidean",
    "uniform": "uniform-64-euclidean",
}


def _suffix_aliases() -> dict[str, str]:
    """Each name without its distance suffix, kept only where that is unambiguous."""
    stems: dict[str, list[str]] = {}
    for name, info in _REGISTRY.items():
        stems.setdefault(name.removesuffix(f"-{info.distance}"), []).append(name)
    return {stem: names[0] for stem, names in stems.items() if len(names) == 1}


ALIASES: dict[str, str] = {**_suffix_aliases(), **_EXTRA_ALIASES}


def base_url() -> str:
    """Where remote datasets are fetched from: `$GPNN_DATASET_URL` or ann-benchmarks' server."""
    return (os.environ.get(URL_ENV) or DEFAULT_BASE_URL).rstrip("/")


def _with_url(info: DatasetInfo) -> DatasetInfo:
    return info if info.generated else replace(info, url=f"{base_url()}/{info.name}.hdf5")


def registered() -> list[DatasetInfo]:
    """Every supported dataset known by name, with its current URL, in a stable order."""
    return [_with_url(info) for info in _REGISTRY.values()]


def resolve(name: str) -> DatasetInfo:
    """The dataset called `name` (full name or alias, case-insensitive).

    Raises ConfigError for a name in an unsupported metric (saying which) or an unknown name
    (with the closest known names, since a typo is the usual cause).
    """
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key in _REGISTRY:
        return _with_url(_REGISTRY[key])
    if key in _UNSUPPORTED:
        raise ConfigError(
            f"dataset {name!r} uses the {_UNSUPPORTED[key]!r} distance, which the harness does not support "
            f"(supported: {', '.join(SUPPORTED)})",
            hint=LIST_HINT,
        )
    known = sorted({*_REGISTRY, *ALIASES})
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
    suggestion = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"unknown dataset {name!r}{suggestion}", hint=LIST_HINT)


def default_data_dir() -> Path:
    """`$GPNN_DATA_DIR` if set, else `./datasets` under the current directory."""
    return Path(os.environ.get(DATA_DIR_ENV) or "datasets")


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def dataset_path(info: DatasetInfo, data_dir: Path) -> Path:
    """`<data_dir>/<name>.hdf5`, refusing any name that could point outside `data_dir`."""
    name = info.name
    if not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise DatasetError(
            f"dataset name {name!r} cannot be used as a file name: expected letters, digits, '.', '_', '+', '-' "
            "without path separators or '..'"
        )
    root = Path(data_dir)
    path = root / f"{name}.hdf5"
    # abspath, not resolve: a file symlinked from another disk is a legitimate choice.
    if Path(os.path.abspath(path)).parent != Path(os.path.abspath(root)):
        raise DatasetError(f"dataset name {name!r} resolves outside the data directory {os.path.abspath(root)}")
    return path


#: columns of the ground truth in an ann-benchmarks file: the 100 nearest neighbours and their distances
GROUND_TRUTH_COLUMNS = 100


def file_size(info: DatasetInfo) -> tuple[int, bool]:
    """The size of `info`'s file in bytes, and whether it is exact: the registry's `size_bytes`
    when it has one, else an estimate from the declared shapes: train and test as float32, and
    per test query GROUND_TRUTH_COLUMNS neighbours and distances, 4 bytes each as ann-benchmarks
    writes them (int32, float32), 8 each in a file this harness generates (int64, float64).
    HDF5's own overhead (kilobytes) is left out."""
    if info.size_bytes is not None:
        return info.size_bytes, True
    vectors = (info.n_train + info.n_test) * info.dimension * 4
    truth = info.n_test * GROUND_TRUTH_COLUMNS * 2 * (8 if info.generated else 4)
    return vectors + truth, False


def list_datasets(data_dir: Path) -> list[tuple[DatasetInfo, bool]]:
    """Every known dataset and whether its file is present in `data_dir`."""
    return [(info, dataset_path(info, data_dir).is_file()) for info in registered()]
