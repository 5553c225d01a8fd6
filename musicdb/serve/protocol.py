"""The contract between the dispatcher (app.py) and the endpoint modules.

Each endpoint module exposes `ENDPOINTS: dict[str, Endpoint]`, keyed by the Subsonic method name
without `.view`. An endpoint takes a `Call` and returns the payload that goes inside
`subsonic-response` (rendered by render.py as XML or JSON) or a Starlette Response (media), or
raises `SubsonicError` for a protocol error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from musicdb.serve.snapshot import Snapshot

API_VERSION = "1.16.1"

# Subsonic error codes (subsonic.org/pages/api.jsp and OpenSubsonic's additions).
GENERIC = 0
MISSING_PARAMETER = 10
WRONG_CREDENTIALS = 40
TOKEN_UNSUPPORTED = 41
MECHANISM_UNSUPPORTED = 42
CONFLICTING_MECHANISMS = 43
INVALID_API_KEY = 44
NOT_AUTHORISED = 50
NOT_FOUND = 70


class SubsonicError(Exception):
    """A protocol error: rendered as `<error code=".." message=".."/>` with status "failed"."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Call:
    """One /rest/ request as an endpoint sees it."""

    params: QueryParams  # the GET query and the POST form, merged
    snapshot: Snapshot
    user: str
    request: Request

    def required(self, name: str) -> str:
        value = self.params.get(name)
        if value is None or value == "":
            raise SubsonicError(MISSING_PARAMETER, f"Required parameter is missing: {name}")
        return value

    def optional(self, name: str, default: str | None = None) -> str | None:
        value = self.params.get(name)
        return default if value is None or value == "" else value

    def optional_int(self, name: str, default: int, *, lo: int | None = None,
                     hi: int | None = None) -> int:
        """The parameter as an int (default when absent), clamped to [lo, hi]; a value that
        is no integer is error 0 naming the parameter."""
        value = self.params.get(name)
        if value is None or value == "":
            number = default
        else:
            try:
                number = int(value)
            except ValueError:
                raise SubsonicError(GENERIC, f"Parameter {name} must be an integer, "
                                    f"not {value[:40]!r}") from None
        if lo is not None:
            number = max(lo, number)
        if hi is not None:
            number = min(hi, number)
        return number

    def all(self, name: str) -> list[str]:
        return self.params.getlist(name)


Endpoint = Callable[[Call], "dict[str, Any] | Response"]
