"""bench/potential_roles.py chooses each configuration on the tuning queries and scores it on the others.

Synthetic per-query outcomes (no harness run): a configuration that reaches a recall only on the tuning
half must be reported as falling short held out, and a distance ratio's interval must hold its point
value and come from the same queries resampled on both sides.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.report.paired import tune_split

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "potential_roles.py"


def split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    halves = tune_split(n, fraction, seed)
    return halves.tune, halves.heldout


@pytest.fixture(scope="module")
def roles():
    spec = importlib.util.spec_from_file_location("potential_roles_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def config(roles, label: str, hits: np.ndarray, comps: np.ndarray):
    return roles.Config("series", label, np.asarray(hits, dtype=bool), np.asarray(comps, dtype=float))


def test_a_configuration_reaching_the_threshold_only_on_the_tuning_half_is_reported_short_held_out(roles) -> None:
    n = 200
    tune, held = split(n, 0.5, 3)
    lucky_hits = np.ones(n, dtype=bool)
    lucky_hits[held[:40]] = False          # recall 1.0 on the tuning half, 0.6 held out, 0.8 overall
    lucky = config(roles, "lucky", lucky_hits, np.full(n, 100.0))
    steady = config(roles, "steady", np.ones(n, dtype=bool), np.full(n, 300.0))

    choice = roles.choose([steady, lucky], 0.9, tune, held)

    # chosen on the tuning half (where it is the cheapest reaching 0.9) ...
    assert choice.config.label == "lucky"
    assert choice.tune_recall == pytest.approx(1.0)
    # ... and scored on the held-out half, where it falls short
    assert choice.held_recall == pytest.approx(0.6) and choice.held_n == len(held)
    assert not choice.reached
    assert choice.held_comps == pytest.approx(100.0)


def test_the_held_out_queries_play_no_part_in_the_choice(roles) -> None:
    n = 100
    tune, held = split(n, 0.5, 5)
    hits = np.ones(n, dtype=bool)
    hits[tune[:5]] = False                 # perfect held out, 0.9 on the tuning half, 0.95 overall
    cheap_on_held = config(roles, "cheap-but-untuned", hits, np.full(n, 10.0))
    costly = config(roles, "costly", np.ones(n, dtype=bool), np.full(n, 50.0))
    assert roles.choose([cheap_on_held, costly], 0.95, tune, held).config.label == "costly"
    assert roles.choose([cheap_on_held], 0.95, tune, held) is None


def test_the_ratio_interval_holds_its_point_and_resamples_both_sides_on_the_same_queries(roles) -> None:
    rng = np.random.default_rng(0)
    a = rng.lognormal(6.0, 0.8, 150)
    b = a * rng.uniform(1.1, 1.9, 150)
    point, low, high = roles.ratio_interval(b, a, resamples=999)
    assert point == pytest.approx(b.mean() / a.mean())
    assert low < point < high
    # fixed seed: the same interval again
    assert roles.ratio_interval(b, a, resamples=999) == (point, low, high)
    # paired: when every query costs exactly twice as much on one side, no resample can move the ratio
    # (resampling the sides independently would give an interval of about +-20 % here)
    _, low, high = roles.ratio_interval(2.0 * a, a, resamples=999)
    assert low == pytest.approx(2.0) and high == pytest.approx(2.0)


def test_paired_ratio_compares_the_two_choices_on_the_held_out_queries_only(roles) -> None:
    n = 100
    tune, held = split(n, 0.5, 11)
    comps_a = np.full(n, 100.0)
    comps_a[tune] = 1000.0                 # expensive on the tuning half only
    a = roles.choose([config(roles, "a", np.ones(n), comps_a)], 0.9, tune, held)
    b = roles.choose([config(roles, "b", np.ones(n), np.full(n, 50.0))], 0.9, tune, held)
    point, low, high = roles.paired_ratio(a, b, resamples=1000)
    assert point == pytest.approx(2.0) and low == pytest.approx(2.0) and high == pytest.approx(2.0)
    assert roles.paired_ratio(a, None) is None
