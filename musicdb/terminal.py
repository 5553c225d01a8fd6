"""Text for the terminal: data as literal text on one line, counts with the right noun."""

from __future__ import annotations

from rich.markup import escape


def one_line(text: str) -> str:
    """Data as literal text on one line: '[/y]' in a name is not markup, newlines show as \\n."""
    return escape(text.replace("\r", "\\r").replace("\n", "\\n"))


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """'1 song', '2,333 songs', '0 songs'; give `nouns` where adding an s is wrong
    (plural(n, "analysis", "analyses"))."""
    return f"{count:,} {noun if count == 1 else (nouns or noun + 's')}"
