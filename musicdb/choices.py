"""Values a user picks by name (label rules, methods, units), checked the same way everywhere."""

from __future__ import annotations

from musicdb.errors import MusicdbError

# The label rules of sql/10_song_labels.sql; every --label-from takes exactly these.
LABEL_RULES = ("auto", "artist", "albumartist", "genre", "folder", "imported")
# Where a name that is no label under the rule asked for is looked for, in this order (auto's
# own order, then genre); sql/30_similarity.sql's similar_artists uses the same list.
RULE_ORDER = ("auto", "artist", "albumartist", "folder", "imported", "genre")


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


def other_rules_hint(con, name: str, rule: str) -> str:
    """", but 'Wesnoth' is a folder label: use --label-from folder" when `name` (matched by
    label_key) is no label under `rule` but one under other rules (song_labels), else ''.

    For an error that would otherwise only offer unrelated suggestions: in a library organised
    by folders, with artist tags naming composers, the folder names are not auto labels.
    `con` is a DuckDB connection.
    """
    rows = con.execute(
        "SELECT rule, min(label) FROM song_labels WHERE rule <> ? "
        "AND label_key(label) = label_key(?) GROUP BY rule ORDER BY list_position(?, rule)",
        [rule, name, list(RULE_ORDER)]).fetchall()
    return rule_hint(rows[0][1], [r for r, _ in rows]) if rows else ""


def rule_hint(label: str, rules: list[str]) -> str:
    """", but 'Wesnoth' is a folder label: use --label-from folder" ('a folder and genre
    label' when several rules have it; the first is the one to use)."""
    names = rules[0] if len(rules) == 1 else f"{', '.join(rules[:-1])} and {rules[-1]}"
    article = "an" if names[0] in "aeiou" else "a"
    return f", but {label!r} is {article} {names} label: use --label-from {rules[0]}"
