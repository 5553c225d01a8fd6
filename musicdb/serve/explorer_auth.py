"""Who may open the explorer: everyone when no user is configured (serve then binds loopback
only), else whoever logged in with a user's name and password.

A login sets a random session token (256 bits) as an HttpOnly, SameSite=Strict cookie; the
server keeps the tokens in memory only, so a restart logs everyone out. SameSite=Strict keeps
the cookie off every request another site starts, so no CSRF token is needed; failed logins
are rate-limited per client address by the same limiter as /rest/.
"""

from __future__ import annotations

import html
import ipaddress
import secrets
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from musicdb.serve.auth import authenticate
from musicdb.serve.protocol import SubsonicError

COOKIE = "musicdb_session"
SESSION_SECONDS = 30 * 24 * 3600
LOGIN_PAGE = Path(__file__).with_name("static") / "login.html"
MAX_FORM_BYTES = 1 << 14  # a name and a password
MAX_SESSIONS = 10_000  # a flood of logins cannot grow memory without bound
# The page's own files only: no inline script, no other origin, not framed by another site.
# plotly adds <style> elements, hence 'unsafe-inline' for styles alone.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: a form posted under it sends "Origin: null", which same_origin refuses.
    "Referrer-Policy": "same-origin",
}


class Gate:
    """Login, logout and the session check for the explorer's routes."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self._sessions: dict[str, tuple[str, float]] = {}  # token -> (user, expires)
        self._lock = threading.Lock()

    @property
    def required(self) -> bool:
        return bool(self._users())

    def _users(self) -> dict:
        return self.state.users()

    def _limit(self) -> Any:
        return self.state.limit

    def user(self, request: Request) -> str | None:
        """The logged-in user of this request, or None."""
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        with self._lock:
            found = self._sessions.get(token)
            if found and found[1] < time.time():
                del self._sessions[token]
                found = None
        # A user removed from the file since the login loses the session.
        return found[0] if found and found[0] in self._users() else None

    def allows(self, request: Request) -> bool:
        """Open without users, but only to a page this machine names itself; else a session."""
        if self.required:
            return self.user(request) is not None
        return loopback_host(request)

    def refusal(self, request: Request) -> str:
        """Why allows() said no, for the 401/403 answer."""
        if self.required:
            return "log in first: POST /login"
        return ("without users the explorer answers only at a loopback address "
                "(http://127.0.0.1:PORT/ or http://localhost:PORT/), not at "
                f"{request.headers.get('host', '')[:80]!r}")

    def login_page(self, request: Request, error: str = "", status: int = 200) -> Response:
        if not self.required:
            return RedirectResponse("/", status_code=303)
        page = LOGIN_PAGE.read_text(encoding="utf-8").replace("<!--ERROR-->", html.escape(error))
        return HTMLResponse(page, status_code=status,
                            headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})

    async def login(self, request: Request) -> Response:
        if not self.required:
            return RedirectResponse("/", status_code=303)
        if not same_origin(request):
            return self.login_page(request, "A login from another site's page is refused.", 403)
        form = await _form(request)
        name, password = form.get("name", ""), form.get("password", "")
        client = request.client.host if request.client else "?"
        # The /rest/ check and rate limit, as u + p (hex-encoded: a password may begin "enc:").
        credentials = {"u": name, "p": "enc:" + password.encode().hex()}
        try:
            authenticate(credentials, self._users(), self._limit(), client)
        except SubsonicError as exc:
            return self.login_page(request, exc.message, 401)
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._forget_expired()
            if len(self._sessions) >= MAX_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))  # the oldest
            self._sessions[token] = (name, time.time() + SESSION_SECONDS)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, max_age=SESSION_SECONDS, path="/", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    def logout(self, request: Request) -> Response:
        if not same_origin(request):
            return HTMLResponse("A logout from another site's page is refused.", 403)
        token = request.cookies.get(COOKIE)
        with self._lock:
            self._sessions.pop(token or "", None)
        response = RedirectResponse("/login" if self.required else "/", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    def _forget_expired(self) -> None:
        now = time.time()
        for token in [t for t, (_, expires) in self._sessions.items() if expires < now]:
            del self._sessions[token]


def loopback_host(request: Request) -> bool:
    """The Host header names this machine (127.x.x.x, ::1, localhost). A page of another site
    whose name was pointed at 127.0.0.1 (DNS rebinding) sends its own name, and a LAN client
    the address it used: both are refused while the explorer is open."""
    host = request.headers.get("host", "")
    name = host[1:host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return name.lower() == "localhost"


def same_origin(request: Request) -> bool:
    """A form POSTed by this site's own page, or by a client that sends no Origin (not a
    browser); a browser posting from another site's page names that site."""
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.headers.get('host')}"


async def _form(request: Request) -> dict[str, str]:
    """A small urlencoded form (Starlette's own parser needs python-multipart)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
