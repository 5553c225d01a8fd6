"""A stable colour and marker per label: derived from the name alone, the same in every chart.

The study's plots changed colours whenever the set of artists changed, because colours were
handed out in order. Here a label's colour is a hash of its name into a fixed palette, so
`TaylorSwift` is the same colour in a map of 13 labels and in a map of 2. Two labels can share
a colour (the palette is finite); the marker symbol comes from other bits of the same hash, so
a shared colour rarely comes with a shared symbol.
"""

from __future__ import annotations

import hashlib
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
