"""Values a user picks by name (label rules, methods, units), checked the same way everywhere."""

from __future__ import annotations

from musicdb.errors import MusicdbError

# The label rules of sql/10_song_labels.sql; every --label-from takes exactly these.
LABEL_RULES = ("auto", "artist", "albumartist", "genre", "folder", "imported")


def require_choice(value: str, allowed: tuple[str, ...] | dict, option: str,
                   error: type[MusicdbError] = MusicdbError) -> None:
    """Raise `error` naming the option and its allowed values unless value is one of them."""
    if value not in allowed:
        raise error(f"{option} must be one of {', '.join(allowed)}, not {value!r}")
