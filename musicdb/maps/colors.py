"""A stable colour and marker per label: derived from the name alone, the same in every chart.

The study's plots changed colours whenever the set of artists changed, because colours were
handed out in order. Here a label's colour is a hash of its name into a fixed palette, so
`TaylorSwift` is the same colour in a map of 13 labels and in a map of 2. Two names can hash
to the same colour (45 colours: among 13 labels that happens more often than not), so within
one chart the label first in hash order keeps it and the other moves to the next free colour
(label_styles); the marker symbol comes from other bits of the same hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache

# Symbols that plotly draws in both SVG (scatter) and WebGL (scattergl) traces.
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x")
# Too pale to see on a white background.
TOO_LIGHT = {"#E2E2E2", "#F7E1A0", "#FBE426", "#16FF32", "#1CFFCE"}


@lru_cache(maxsize=1)
def palette() -> tuple[str, ...]:
    """plotly's Dark24 then Alphabet qualitative palettes, without the palest colours."""
    from plotly.colors import qualitative

    colours = [*qualitative.Dark24, *qualitative.Alphabet]
    return tuple(dict.fromkeys(c.upper() for c in colours if c.upper() not in TOO_LIGHT))


def _digest(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "big")


def label_color(name: str) -> str:
    """The label's colour, '#RRGGBB': a function of the name only."""
    colours = palette()
    return colours[_digest(name) % len(colours)]


def label_symbol(name: str) -> str:
    """The label's marker symbol, from bits of the hash that the colour does not use."""
    return SYMBOLS[(_digest(name) // len(palette())) % len(SYMBOLS)]


def label_styles(names: Iterable[str]) -> dict[str, tuple[str, str]]:
    """(colour, symbol) of each label of one chart, no two sharing a colour if avoidable.

    Every label keeps label_color(name) unless a label earlier in hash order (an order that
    does not depend on which other labels are shown) has the same one; such a label takes the
    next palette colour that no label of the chart owns. With more labels than colours,
    colours repeat and the symbols tell them apart.
    """
    colours = palette()
    ordered = sorted(set(names), key=lambda n: (_digest(n), n))
    own = {name: label_color(name) for name in ordered}
    colour_of: dict[str, str] = {}
    for name in ordered:  # first come keep their own colour
        if own[name] not in colour_of.values():
            colour_of[name] = own[name]
    owned = set(colour_of.values())
    for name in ordered:  # the others: the next colour nobody owns, else any
        if name in colour_of:
            continue
        start = colours.index(own[name])
        candidates = [colours[(start + k) % len(colours)] for k in range(1, len(colours))]
        colour_of[name] = next((c for c in candidates if c not in owned), own[name])
        owned.add(colour_of[name])
    return {name: (colour_of[name], label_symbol(name)) for name in ordered}
