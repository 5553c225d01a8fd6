"""A stable colour and marker per label: derived from the name, the same in every chart where
it can be, and never near-identical to another label's colour in the same chart.

The study's plots changed colours whenever the set of artists changed, because colours were
handed out in order. Here a label's colour is a hash of its name into a fixed palette, so
`TaylorSwift` is the same colour in a map of 13 labels and in a map of 2. Two names can hash
to the same colour, or to two that look alike (a 45-colour palette holds several purples), so
within one chart the label first in hash order keeps its colour and a later one whose colour
is within MIN_DELTA_E of a kept one moves to the palette colour farthest from those taken
(CIELAB distance: perceptually spaced, like a Glasbey palette). The marker symbol comes from
other bits of the same hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

# Symbols that plotly draws in both SVG (scatter) and WebGL (scattergl) traces.
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x")
# Too pale to see on a white background.
TOO_LIGHT = {"#E2E2E2", "#F7E1A0", "#FBE426", "#16FF32", "#1CFFCE"}
# Two colours of one chart at least this far apart in CIELAB (CIE76 delta E) read as
# different at a glance; below ~10 they are the "same purple". Held while the palette allows.
MIN_DELTA_E = 25.0


@lru_cache(maxsize=1)
def palette() -> tuple[str, ...]:
    """plotly's Dark24 then Alphabet qualitative palettes, without the palest colours."""
    from plotly.colors import qualitative

    colours = [*qualitative.Dark24, *qualitative.Alphabet]
    return tuple(dict.fromkeys(c.upper() for c in colours if c.upper() not in TOO_LIGHT))


def cielab(hex_colours: Iterable[str]) -> np.ndarray:
    """(n, 3) CIELAB (D65) coordinates of '#RRGGBB' sRGB colours."""
    rgb = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in hex_colours]) / 255.0
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                       [0.0193, 0.1192, 0.9505]])
    xyz = linear.reshape(-1, 3) @ to_xyz.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]),
                     200 * (f[:, 1] - f[:, 2])], axis=1)


@lru_cache(maxsize=1)
def _distances() -> np.ndarray:
    """Delta E between every two palette colours."""
    lab = cielab(palette())
    return np.linalg.norm(lab[:, None, :] - lab[None, :, :], axis=2)


def _digest(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "big")


def label_color(name: str) -> str:
    """The label's own colour, '#RRGGBB': a function of the name only."""
    colours = palette()
    return colours[_digest(name) % len(colours)]


def label_symbol(name: str) -> str:
    """The label's marker symbol, from bits of the hash that the colour does not use."""
    return SYMBOLS[(_digest(name) // len(palette())) % len(SYMBOLS)]


def label_styles(names: Iterable[str]) -> dict[str, tuple[str, str]]:
    """(colour, symbol) of each label of one chart, no two alike while the palette allows.

    In hash order (an order that does not depend on which other labels are shown) each label
    keeps label_color(name) when it is at least MIN_DELTA_E from every colour taken so far;
    otherwise it takes the free palette colour farthest from those taken. With more labels
    than the palette spaces well, the symbols tell them apart too.
    """
    colours = palette()
    distance = _distances()
    ordered = sorted(set(names), key=lambda n: (_digest(n), n))
    taken: list[int] = []
    colour_of: dict[str, str] = {}
    for name in ordered:
        own = colours.index(label_color(name))
        if not taken or distance[own, taken].min() >= MIN_DELTA_E:
            choice = own
        else:
            # Ties go to the first colour after the label's own, so the choice is stable.
            order = [(own + k) % len(colours) for k in range(len(colours))]
            free = [i for i in order if i not in taken] or order
            choice = max(free, key=lambda i: distance[i, taken].min())
        taken.append(choice)
        colour_of[name] = colours[choice]
    return {name: (colour_of[name], label_symbol(name)) for name in ordered}
