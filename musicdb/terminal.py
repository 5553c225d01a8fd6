"""Data printed in the terminal as literal text: no markup, one line."""

from __future__ import annotations

from rich.markup import escape


def one_line(text: str) -> str:
    """Data as literal text on one line: '[/y]' in a name is not markup, newlines show as \\n."""
    return escape(text.replace("\r", "\\r").replace("\n", "\\n"))
