"""Colours, markers and line styles: one look per algorithm, the same in every figure.

A reader compares figures side by side (recall/QPS next to build time next to memory), so an
algorithm must keep its colour and marker everywhere, and from one report to the next. Known
algorithms get a fixed style; a name added later gets one derived from a hash of the name
(SHA-256, not Python's salted `hash`), so it is stable across processes and machines.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class AlgorithmStyle:
    """How one algorithm is drawn."""

    colour: str
    marker: str


KNOWN_STYLES: dict[str, AlgorithmStyle] = {
    "bruteforce": AlgorithmStyle("#000000", "X"),
    "faiss-flat": AlgorithmStyle("#555555", "x"),
    "faiss-ivf": AlgorithmStyle("#1f77b4", "o"),
    "faiss-ivfpq": AlgorithmStyle("#17becf", "v"),
    "faiss-hnsw": AlgorithmStyle("#9467bd", "D"),
    "hnswlib": AlgorithmStyle("#ff7f0e", "s"),
    "potential-gaussian": AlgorithmStyle("#d62728", "^"),
    "potential-gaussian-ivf": AlgorithmStyle("#e377c2", "<"),
    "potential-1": AlgorithmStyle("#2ca02c", ">"),
    "potential-2": AlgorithmStyle("#8c564b", "P"),
    "potential-naive": AlgorithmStyle("#bcbd22", "*"),
    "potential-gaussian-graph": AlgorithmStyle("#7f3b08", "h"),
    "potential-1-ivf": AlgorithmStyle("#98df8a", "d"),
    "potential-2-planes": AlgorithmStyle("#c49c94", "p"),
    "potential-cauchy": AlgorithmStyle("#393b79", "8"),
}

# Colours for names not in KNOWN_STYLES, chosen apart from the known ones.
FALLBACK_COLOURS: tuple[str, ...] = (
    "#6b6ecf", "#b5cf6b", "#e7969c", "#ce6dbd", "#637939",
    "#8c6d31", "#843c39", "#3182bd", "#31a354", "#756bb1",
    "#e6550d", "#636363",
)
FALLBACK_MARKERS: tuple[str, ...] = ("o", "s", "^", "v", "D", "P", "*", "h", "p", "<", ">", "d")

# Batch CPU runs are the common case and get solid lines; the other runs of the same algorithm
# share its colour and marker but not its line, so the legend tells them apart.
LINESTYLES: dict[tuple[str, str], str] = {
    ("cpu", "batch"): "-",
    ("cuda", "batch"): "--",
    ("cpu", "single"): ":",
    ("cuda", "single"): "-.",
}


def style_for(algorithm: str) -> AlgorithmStyle:
    """The fixed style of a known algorithm, else a stable hash-derived one."""
    known = KNOWN_STYLES.get(algorithm)
    if known is not None:
        return known
    digest = int.from_bytes(hashlib.sha256(algorithm.encode("utf-8")).digest()[:8], "big")
    colour = FALLBACK_COLOURS[digest % len(FALLBACK_COLOURS)]
    marker = FALLBACK_MARKERS[(digest // len(FALLBACK_COLOURS)) % len(FALLBACK_MARKERS)]
    return AlgorithmStyle(colour, marker)


def linestyle_for(device: str | None, mode: str | None) -> str:
    """The line style for a run's device and query mode (solid for unknown combinations)."""
    return LINESTYLES.get((device or "cpu", mode or "batch"), "-")
