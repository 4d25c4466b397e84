"""The dataset registry: names, aliases, URLs, the data directory and path safety."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.data.distances import SUPPORTED
from harness.data.registry import (
    ALIASES,
    DatasetInfo,
    dataset_path,
    default_data_dir,
    list_datasets,
    registered,
    resolve,
)
from harness.errors import ConfigError, DatasetError

REQUIRED_NAMES = [
    "sift-128-euclidean", "gist-960-euclidean", "glove-25-angular", "glove-50-angular", "glove-100-angular",
    "glove-200-angular", "fashion-mnist-784-euclidean", "mnist-784-euclidean", "nytimes-256-angular",
    "deep-image-96-angular", "random-xs-20-euclidean", "random-s-100-euclidean", "random-xs-20-angular",
    "uniform-64-euclidean",
]


@pytest.mark.parametrize("name", REQUIRED_NAMES)
def test_required_datasets_resolve_to_themselves(name: str) -> None:
    info = resolve(name)
    assert info.name == name
    assert info.distance in SUPPORTED
    assert name.endswith(info.distance)


@pytest.mark.parametrize(
    "alias, name",
    [
        ("sift-128", "sift-128-euclidean"),
        ("sift", "sift-128-euclidean"),
        ("gist-960", "gist-960-euclidean"),
        ("glove-100", "glove-100-angular"),
        ("glove-25", "glove-25-angular"),
        ("fashion-mnist", "fashion-mnist-784-euclidean"),
        ("mnist", "mnist-784-euclidean"),
        ("nytimes", "nytimes-256-angular"),
        ("deep-image", "deep-image-96-angular"),
        ("uniform-64", "uniform-64-euclidean"),
        ("random-s-100", "random-s-100-euclidean"),
        ("  SIFT-128 ", "sift-128-euclidean"),
    ],
)
def test_aliases(alias: str, name: str) -> None:
    assert resolve(alias).name == name


def test_every_alias_points_to_a_registered_dataset() -> None:
    names = {info.name for info in registered()}
    assert set(ALIASES.values()) <= names


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve("sift-128-euclidian")
    assert "sift-128-euclidean" in caught.value.message
    assert "python -m harness datasets list" in (caught.value.hint or "")


def test_unsupported_distance_is_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve("kosarak-jaccard")
    assert "'jaccard'" in caught.value.message and "euclidean" in caught.value.message


def test_remote_urls_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPNN_DATASET_URL")
    assert resolve("sift-128").url == "https://ann-benchmarks.com/sift-128-euclidean.hdf5"
    monkeypatch.setenv("GPNN_DATASET_URL", "http://127.0.0.1:8000/mirror/")
    assert resolve("glove-100").url == "http://127.0.0.1:8000/mirror/glove-100-angular.hdf5"


def test_generated_datasets_have_no_url_and_known_sizes() -> None:
    info = resolve("random-xs-20-euclidean")
    assert info.generated and info.url is None
    assert (info.n_train, info.n_test, info.dimension) == (9000, 1000, 20)
    assert (resolve("uniform-64").n_train, resolve("uniform-64").n_test) == (1000, 1000)


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GPNN_DATA_DIR", str(tmp_path / "elsewhere"))
    assert default_data_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("GPNN_DATA_DIR")
    assert default_data_dir() == Path("datasets")


def test_dataset_path_is_inside_the_data_dir(tmp_path: Path) -> None:
    assert dataset_path(resolve("mnist"), tmp_path) == tmp_path / "mnist-784-euclidean.hdf5"


@pytest.mark.parametrize("bad", ["../escape", "a/b", "/etc/passwd", "..", "a\\b", "x..y", "", ".hidden"])
def test_dataset_path_rejects_names_that_could_escape(tmp_path: Path, bad: str) -> None:
    info = replace(resolve("mnist"), name=bad)
    with pytest.raises(DatasetError):
        dataset_path(info, tmp_path)


def test_list_datasets_reports_presence(tmp_path: Path) -> None:
    (tmp_path / "mnist-784-euclidean.hdf5").write_bytes(b"")
    listing = list_datasets(tmp_path)
    present = {info.name for info, here in listing if here}
    assert present == {"mnist-784-euclidean"}
    assert all(isinstance(info, DatasetInfo) for info, _ in listing)
    assert all(info.distance in SUPPORTED for info, _ in listing)
