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


def did_you_mean(con, wanted: str, names_sql: str, args: list | tuple = (),
                 limit: int = 3, *, also: bool = False) -> str:
    """'; did you mean 'A', 'B'?' naming the closest of the names `names_sql` selects (a
    column `name`), or '' when there are none.

    The caller's query decides what is offered, so only names that exist and can be used are
    suggested (a song that failed to decode is not one); a name equal to what was typed, up
    to case and accents (sql: label_key), is never offered back. With `also`, names_sql
    selects a second column `also`, another text the name is known by (a song's title for
    'Artist - Title'): a name whose `also` equals what was typed comes first, and closeness
    counts on either text. `con` is a DuckDB connection.
    """
    other = "also" if also else "NULL::VARCHAR"
    rows = con.execute(
        f"SELECT name FROM (SELECT name, {other} AS also FROM ({names_sql})) "
        "WHERE name IS NOT NULL AND label_key(name) <> label_key(?) GROUP BY name "
        "ORDER BY coalesce(bool_or(label_key(also) = label_key(?)), false) DESC, "
        "max(greatest(jaro_winkler_similarity(label_key(name), label_key(?)), "
        "coalesce(jaro_winkler_similarity(label_key(also), label_key(?)), 0))) DESC, "
        "name LIMIT ?",
        [*args, wanted, wanted, wanted, wanted, limit]).fetchall()
    return f"; did you mean {', '.join(repr(r[0]) for r in rows)}?" if rows else ""
