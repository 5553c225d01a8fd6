"""Who is calling: Subsonic's credentials checked against the users file, rate-limited.

Mechanisms (Subsonic API and OpenSubsonic's apiKeyAuthentication extension):
- `u` + `t` + `s`: t = md5(password + s), hex, with a salt the client picks per call;
- `u` + `p`: the password in clear or as `enc:` + its UTF-8 bytes in hex (legacy);
- `apiKey` alone: the key `musicdb user add` printed. With `u`, `p`, `t` or `s` beside it,
  error 43; an unknown key, error 44.
Wrong credentials are error 40. Every comparison is hmac.compare_digest, and an unknown user
costs the same comparison as a known one.

Rate limit: a client IP that fails FAILURES times within WINDOW_S seconds is answered error 40
without any check for COOL_DOWN_S seconds (its right password too), which caps guessing at
about 10 tries a minute per address. A success does not clear the count: logging in to one
account must not reset the guesses at another.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import deque

from musicdb.serve.protocol import (
    CONFLICTING_MECHANISMS,
    INVALID_API_KEY,
    MISSING_PARAMETER,
    WRONG_CREDENTIALS,
    SubsonicError,
)
from musicdb.serve.users import User

FAILURES = 10
WINDOW_S = 60.0
COOL_DOWN_S = 60.0
MAX_CLIENTS = 10_000  # addresses remembered; the oldest are forgotten first
WRONG = "Wrong username or password"


class RateLimit:
    """Failed attempts per client address, and the addresses cooling down."""

    def __init__(self, failures: int = FAILURES, window_s: float = WINDOW_S,
                 cool_down_s: float = COOL_DOWN_S) -> None:
        self.failures, self.window_s, self.cool_down_s = failures, window_s, cool_down_s
        self._failed: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def blocked(self, client: str) -> bool:
        with self._lock:
            until = self._blocked_until.get(client)
            if until is None:
                return False
            if time.monotonic() < until:
                return True
            del self._blocked_until[client]
            return False

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            times = self._failed.pop(client, None) or deque()
            self._failed[client] = times  # re-inserted: dicts keep insertion order, newest last
            times.append(now)
            while times and times[0] < now - self.window_s:
                times.popleft()
            if len(times) >= self.failures:
                self._blocked_until.pop(client, None)
                self._blocked_until[client] = now + self.cool_down_s  # newest last
                times.clear()
            for remembered in (self._failed, self._blocked_until):  # many addresses (IPv6)
                while len(remembered) > MAX_CLIENTS:
                    del remembered[next(iter(remembered))]


def authenticate(params, users: dict[str, User], limit: RateLimit, client: str) -> str:
    """The name of the user these parameters authenticate, or SubsonicError."""
    if limit.blocked(client):
        raise SubsonicError(WRONG_CREDENTIALS, f"{WRONG} (too many failed attempts from this "
                            f"address: try again in {COOL_DOWN_S:.0f} s)")
    try:
        name = _check(params, users)
    except SubsonicError as exc:
        if exc.code in (WRONG_CREDENTIALS, INVALID_API_KEY):
            limit.failed(client)
        raise
    return name


def _check(params, users: dict[str, User]) -> str:
    api_key = params.get("apiKey")
    given = [name for name in ("u", "p", "t", "s") if params.get(name) is not None]
    if api_key is not None:
        if given:
            raise SubsonicError(CONFLICTING_MECHANISMS, "Multiple conflicting authentication "
                                f"mechanisms provided: apiKey with {', '.join(given)}")
        return _by_api_key(api_key, users)
    name = params.get("u")
    if name is None:
        raise SubsonicError(MISSING_PARAMETER, "Required parameter is missing: u (or apiKey)")
    password, token, salt = params.get("p"), params.get("t"), params.get("s")
    if password is not None and (token is not None or salt is not None):
        raise SubsonicError(CONFLICTING_MECHANISMS, "Multiple conflicting authentication "
                            "mechanisms provided: p with t/s")
    user = users.get(name)
    secret = user.password if user else "\0unknown user"  # the same work either way
    if token is not None or salt is not None:
        if token is None or salt is None:
            raise SubsonicError(MISSING_PARAMETER, "Required parameter is missing: "
                                f"{'t' if token is None else 's'}")
        # md5 because the Subsonic protocol defines the token so; the salt is the client's
        expected = hashlib.md5((secret + salt).encode()).hexdigest()
        right = hmac.compare_digest(expected.encode(), token.lower().encode())
    elif password is not None:
        right = hmac.compare_digest(secret.encode(), _clear(password))
    else:
        raise SubsonicError(MISSING_PARAMETER, "Required parameter is missing: t and s (or p)")
    if not (right and user):
        raise SubsonicError(WRONG_CREDENTIALS, WRONG)
    return user.name


def _clear(password: str) -> bytes:
    """The password's bytes: `enc:` + hex is decoded; a bad hex string matches nothing."""
    if password.startswith("enc:"):
        try:
            return bytes.fromhex(password[4:])
        except ValueError:
            return b"\0not hex"
    return password.encode()


def _by_api_key(api_key: str, users: dict[str, User]) -> str:
    found = None
    for user in users.values():  # no early exit: the time does not say which user matched
        if hmac.compare_digest(user.api_key.encode(), api_key.encode()):
            found = user.name
    if found is None:
        raise SubsonicError(INVALID_API_KEY, "Invalid API key")
    return found
