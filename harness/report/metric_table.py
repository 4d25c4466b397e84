"""The metrics a figure axis or a table can show, derived from `harness.metric_catalog`.

Each declared metric that is one number per record (the per-run lists aside) is a `Metric`: its
declaration (name, label, unit, direction, interval kind, scale) plus how the report reads its
value and interval from a record. `harness plot --x NAME --y NAME` takes any of them; adding a
metric is one `MetricSpec` in `harness/metric_catalog.py` (and its computation in `harness.measure.metrics`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

from harness.metric_catalog import CATALOGUE, SCALES, MetricSpec
from harness.report.summary import metric, recall_interval, run_spread

Record = Mapping[str, Any]
__all__ = ["BY_NAME", "METRICS", "SCALES", "Metric", "get_metric"]


@dataclass(frozen=True)
class Metric(MetricSpec):
    """A declared metric, read from records: its value and its interval, stored or as shown."""

    @classmethod
    def of(cls, spec: MetricSpec) -> Metric:
        return cls(**{f.name: getattr(spec, f.name) for f in fields(spec)})

    def value(self, record: Record) -> float:
        """The metric as a float in its stored unit, NaN when the record has none (not measured, or not a number)."""
        return metric(record, self.name)

    def bounds(self, record: Record) -> tuple[float, float]:
        """The metric's interval in `record` (see `interval`), (nan, nan) when it has none."""
        if self.interval == "wilson":
            return recall_interval(record, self.name)
        if self.interval == "runs":
            return run_spread(record, self.name)
        return math.nan, math.nan

    def shown_value(self, record: Record) -> float:
        """The value in the unit figures and hover texts show (`display_unit`, e.g. MiB)."""
        return self.shown(self.value(record))

    def shown_bounds(self, record: Record) -> tuple[float, float]:
        low, high = self.bounds(record)
        return self.shown(low), self.shown(high)


METRICS: tuple[Metric, ...] = tuple(Metric.of(spec) for spec in CATALOGUE if not spec.per_run)
BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}


def get_metric(name: str) -> Metric:
    """The metric called `name`; ValueError listing the known ones otherwise."""
    if name not in BY_NAME:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(BY_NAME)}")
    return BY_NAME[name]
