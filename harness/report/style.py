"""Colours, markers and line styles: one look per algorithm, the same in every figure.

A reader compares figures side by side (recall/QPS next to build time next to memory), so an
algorithm must keep its colour and marker everywhere, and from one report to the next. Known
algorithms get a fixed style; a name added later gets one derived from a hash of the name
(SHA-256, not Python's salted `hash`), so it is stable across processes and machines.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable


@dataclass(frozen=True)
class AlgorithmStyle:
    """How one algorithm is drawn."""

    colour: str
    marker: str


#: one colour-blind-safe palette (Okabe & Ito's eight, then Paul Tol's muted and dark hues), each
#: hue clearly apart from the others; every colour an algorithm gets comes from here
PALETTE: tuple[str, ...] = (
    "#D55E00", "#0072B2", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000", "#882255",
    "#44AA99", "#999933", "#332288", "#AA4499", "#777777", "#117733", "#DDCC77",
)

KNOWN_STYLES: dict[str, AlgorithmStyle] = {
    "potential-gaussian": AlgorithmStyle("#D55E00", "^"),   # vermillion
    "faiss-ivf": AlgorithmStyle("#0072B2", "o"),            # blue
    "potential-1": AlgorithmStyle("#009E73", ">"),          # bluish green
    "hnswlib": AlgorithmStyle("#E69F00", "s"),              # orange
    "faiss-hnsw": AlgorithmStyle("#CC79A7", "D"),           # reddish purple
    "faiss-ivfpq": AlgorithmStyle("#56B4E9", "v"),          # sky blue
    "bruteforce": AlgorithmStyle("#000000", "X"),
    "potential-gaussian-ivf": AlgorithmStyle("#882255", "<"),  # wine
    "potential-1-ivf": AlgorithmStyle("#44AA99", "d"),      # teal
    "potential-2": AlgorithmStyle("#999933", "P"),          # olive
    "potential-cauchy": AlgorithmStyle("#332288", "8"),     # indigo
    "potential-gaussian-graph": AlgorithmStyle("#AA4499", "h"),  # purple
    "faiss-flat": AlgorithmStyle("#777777", "x"),           # grey
    "potential-2-planes": AlgorithmStyle("#117733", "p"),   # green
    "potential-naive": AlgorithmStyle("#DDCC77", "*"),      # sand
}

# Colours for names not in KNOWN_STYLES (when no figure-wide assignment is made: `assign_styles`).
FALLBACK_COLOURS: tuple[str, ...] = PALETTE
FALLBACK_MARKERS: tuple[str, ...] = ("o", "s", "^", "v", "D", "P", "*", "h", "p", "<", ">", "d")

# Batch CPU runs are the common case and get solid lines; the other runs of the same algorithm
# share its colour and marker but not its line, so the legend tells them apart. Dotted lines are
# kept for controls (drawn muted in their method's colour), so no device or mode is dotted.
LINESTYLES: dict[tuple[str, str], str] = {
    ("cpu", "batch"): "-",
    ("cuda", "batch"): "--",
    ("cpu", "single"): "-.",
    ("cuda", "single"): "longdashdot",
}
#: matplotlib's form of the named line styles above
MPL_LINESTYLES: dict[str, Any] = {"longdashdot": (0, (8, 2, 1, 2))}
#: the line style of a control, in every figure
CONTROL_LINESTYLE = ":"


def assign_styles(algorithms: Iterable[str]) -> dict[str, AlgorithmStyle]:
    """The style of each algorithm of one report, every colour different while the palette lasts:
    known algorithms keep their fixed colour unless another present one holds it, names added later
    (a new plugin potential) take the first palette colour no present algorithm uses, so a new
    method never shares or nearly shares a hue with the method it is compared with."""
    names = sorted(set(algorithms), key=lambda n: (n not in KNOWN_STYLES, n))
    out: dict[str, AlgorithmStyle] = {}
    used: set[str] = set()
    for name in names:
        style = style_for(name)
        if style.colour in used:
            free = [c for c in PALETTE if c not in used]
            style = AlgorithmStyle(free[0], style.marker) if free else style
        used.add(style.colour)
        out[name] = style
    return out


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


def mpl_linestyle(name: str) -> Any:
    """A line style name of this module as matplotlib takes it."""
    return MPL_LINESTYLES.get(name, name)
