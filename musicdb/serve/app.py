"""The Starlette application: /rest/<method>[.view] (GET and POST) and the explorer's routes.

`build_app(config)` loads the first snapshot (a database problem is a StoreError before
anything listens), merges the ENDPOINTS of every endpoint module present, and starts the
snapshot watcher in the app's lifespan. Endpoints are sync functions: Starlette runs them in
its thread pool, so a DuckDB query never blocks the event loop; the few calls a player makes
most that answer from the snapshot's memory alone run on the loop itself (ON_THE_LOOP).
Every /rest/ method needs
Subsonic credentials (auth.py), except getOpenSubsonicExtensions, which the OpenSubsonic
specification requires to be public. An unknown method is HTTP 404 with Subsonic error 0 in
the body (Navidrome answers 404 too). No CORS headers are ever sent. While no user is
configured, only clients on this machine are answered (OnlyThisMachineWithoutUsers).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from musicdb.errors import ServeError
from musicdb.serve import auth, browse, explorer, media, playlists, render, sonic, system, users
from musicdb.serve.protocol import GENERIC, Call, Endpoint, SubsonicError
from musicdb.serve.snapshot import RELOAD_SECONDS, Snapshots

PUBLIC = frozenset({"getOpenSubsonicExtensions"})
MAX_FORM_BYTES = 1 << 20  # a POSTed form: parameters, never uploads

log = logging.getLogger("musicdb.serve")


def _song_id(params: QueryParams) -> bool:
    return (params.get("id") or "").startswith("so-")


# Calls answered from the in-memory tables and indexes in about a millisecond of Python
# (similar songs of a song: one index search; search3 without a music folder: the trigram
# indexes, one label_key query; the rare query they hand back to the SQL scan holds the loop
# for that scan): run on the event loop, not in the thread pool. A pool
# thread gains nothing for work that holds the GIL, and 50 clients' requests through the
# pool cost ~1.5x the server CPU of the same requests on the loop, the threads taking the
# GIL from each other (benchmarks/serve.py's CPU per request, side by side).
ON_THE_LOOP = {
    "ping": lambda params: True,
    "getSimilarSongs": _song_id,
    "getSimilarSongs2": _song_id,
    "getSonicSimilarTracks": _song_id,
    "search3": lambda params: not params.get("musicFolderId"),  # as folder_root reads it
}


@dataclass(frozen=True)
class ServeConfig:
    db: Path
    users_file: Path
    reload_seconds: float = RELOAD_SECONDS
    playlists: Path | None = None  # the folder of .m3u8 files (None: the database's folder)


class Users:
    """The users file, read again when it changes (a `musicdb user add` while serving)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._signature: tuple | None = None
        self._users: dict[str, users.User] = {}
        self.get()  # an unsafe file stops the start, with its one line

    def get(self) -> dict[str, users.User]:
        try:
            info = os.stat(self.path)
            signature = (info.st_mtime_ns, info.st_size, info.st_mode, info.st_ino)
        except FileNotFoundError:
            signature = None
        if signature != self._signature:
            self._users = users.load(self.path)
            self._signature = signature
        return self._users

    def current(self) -> dict[str, users.User]:
        """The users, or none (nobody gets in) when the file turned unsafe while serving."""
        try:
            return self.get()
        except ServeError as exc:
            log.warning("musicdb serve: %s; refusing every login until it is fixed", exc)
            self._signature = None
            return {}


class State:
    """What the app holds: the snapshots, the users, the rate limit, the endpoints."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.users_file = Users(config.users_file)
        self.snapshots = Snapshots(config.db, reload_seconds=config.reload_seconds)
        self.limit = auth.RateLimit()
        self.endpoints = merged_endpoints()

    def users(self) -> dict[str, users.User]:
        return self.users_file.current()


def merged_endpoints() -> dict[str, Endpoint]:
    """The ENDPOINTS of the endpoint modules, one dict keyed by method name."""
    merged: dict[str, Endpoint] = {}
    for module in (system, browse, sonic, media, playlists):
        merged.update(module.ENDPOINTS)
    return merged


def build_app(config: ServeConfig) -> Starlette:
    state = State(config)
    routes: list[BaseRoute] = [
        Route("/rest/{method:str}", _rest_handler(state), methods=["GET", "POST"]),
    ]
    routes += explorer.routes(state)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        state.snapshots.start()
        try:
            yield
        finally:
            state.snapshots.stop()

    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(OnlyThisMachineWithoutUsers, state=state)])
    app.state.musicdb = state
    return app


class OnlyThisMachineWithoutUsers:
    """With no user configured, only clients on this machine are answered at all.

    `musicdb serve` refuses to start on a non-loopback address without a user, but the last
    user can be removed while it runs: then the explorer (open without users) must not become
    open to the network, whatever Host header a client sends."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _loopback(scope) and not self.state.users():
            response = PlainTextResponse("No user is configured, so this server answers only "
                                         "this machine: add one with `musicdb user add NAME`.",
                                         status_code=403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _loopback(scope: Scope) -> bool:
    client = scope.get("client")
    try:
        address = ipaddress.ip_address(client[0]) if client else None
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address is not None and address.is_loopback


def _rest_handler(state: State):
    async def rest(request: Request) -> Response:
        params = await _params(request)
        as_json = render.wants_json(params)
        name = request.path_params["method"].removesuffix(".view")
        endpoint = state.endpoints.get(name)
        if endpoint is None:
            response = render.error(SubsonicError(GENERIC, f"Unknown method: {name[:60]}"),
                                    as_json=as_json)
            response.status_code = 404
            return response
        began = time.perf_counter()
        try:
            user = "" if name in PUBLIC else auth.authenticate(
                params, state.users(), state.limit, _client(request))
            call = Call(params=params, snapshot=state.snapshots.current, user=user,
                        request=request)
            on_the_loop = ON_THE_LOOP.get(name)
            if on_the_loop is not None and on_the_loop(params):
                result, handler = _timed(endpoint, call)
            else:
                result, handler = await run_in_threadpool(_timed, endpoint, call)
        except SubsonicError as exc:
            return render.error(exc, as_json=as_json)
        if isinstance(result, Response):
            return result
        response = render.ok(result, as_json=as_json)
        response.headers["Server-Timing"] = _server_timing(began, *handler)
        return response

    return rest


def _timed(endpoint: Endpoint, call: Call) -> tuple[dict | Response, tuple[float, float]]:
    """The endpoint's result and when it started and ended (perf_counter), in its thread."""
    started = time.perf_counter()
    result = endpoint(call)
    return result, (started, time.perf_counter())


def _server_timing(began: float, started: float, ended: float) -> str:
    """The Server-Timing header, in milliseconds from the parsed request: `wait` until the
    endpoint starts (authentication, a free pool thread), `handler` (the endpoint), `total`
    until the body is rendered. So a load test can tell the server's time from its own, and a
    slow answer's cause: queueing for the GIL and threads, or the work."""
    now = time.perf_counter()
    return (f"wait;dur={1000 * (started - began):.2f}, handler;dur={1000 * (ended - started):.2f}, "
            f"total;dur={1000 * (now - began):.2f}")


async def _params(request: Request) -> QueryParams:
    """The query string and, for a POSTed form (OpenSubsonic formPost), its fields."""
    pairs = list(request.query_params.multi_items())
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method == "POST" and content_type == "application/x-www-form-urlencoded":
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise HTTPException(413, "form too large")
        pairs += parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return QueryParams(pairs)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"
