"""The web explorer at `/`: one page (static/index.html + app.js) over a small JSON API.

    /                 the page (or /login's form when users exist and no session is open)
    /static/NAME      app.js, style.css, and plotly.min.js from the installed plotly package
    /api/session      who is logged in
    /api/library      how many songs and artists, and the data's time
    /api/search       ?q=words[&limit=20][&artists=0]      songs and artists
    /api/artist/ID    its songs and similar artists         (ID: ar-...)
    /api/song/ID      its facts and similar songs           (ID: so-12 or 12)
    /api/maps         stored `musicdb map` runs; /api/maps/RUN its points
    /api/path         ?a=ID&b=ID&n=12                       a song path A -> B
    /api/path.m3u8    the same path as a playlist download
    /api/stream/ID    the song's file (HTTP Range), through media.stream_song

Everything the page loads comes from this server: it works offline. Bad input is a JSON
`{"error": "..."}` with a 4xx status. No CORS headers are sent, so other sites' pages cannot
read the API; the session cookie is SameSite=Strict, so they cannot act with it either.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from musicdb.serve import explorer_api as api
from musicdb.serve.explorer_api import ExplorerError
from musicdb.serve.explorer_auth import SECURITY_HEADERS, Gate
from musicdb.serve.media import stream_song

STATIC = Path(__file__).with_name("static")
ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}
MAX_LIMIT = 200
MAX_PATH_SONGS = 100


def plotly_js() -> Path:
    """The plotly.min.js of the installed plotly package (the one `musicdb map` inlines),
    found without importing plotly (the plots layer's library) into the server."""
    spec = importlib.util.find_spec("plotly")
    return Path(spec.origin).parent / "package_data" / "plotly.min.js"


def routes(state: Any) -> list[BaseRoute]:
    """The explorer's routes. `state` is the app's: `state.snapshots.current` is the snapshot
    to read, and `state.users()` the configured users (none: the explorer is open)."""
    gate = Gate(state)
    snapshot = partial(_current, state)

    def json_route(path: str, answer: Callable[[Request, Any], dict]) -> Route:
        def endpoint(request: Request) -> Response:
            if not gate.allows(request):
                return _refused(gate, request)
            try:
                return _json(answer(request, snapshot()))
            except ExplorerError as exc:
                return _error(exc.status, exc.message)
        return Route(path, endpoint)

    def stream(request: Request) -> Response:
        if not gate.allows(request):
            return _refused(gate, request)
        try:
            song_id = _song_id(request.path_params["song"])
        except ExplorerError as exc:
            return _error(exc.status, exc.message)
        response = stream_song(snapshot(), song_id, request)
        if response.status_code == 404:  # media's plain-text answer: JSON like the rest
            return _error(404, f"no playable file for so-{song_id} in the library")
        return response

    def page(request: Request) -> Response:
        if gate.required and not gate.allows(request):
            return RedirectResponse("/login", status_code=303)
        if not gate.allows(request):
            return _refused(gate, request)
        return _file(STATIC / "index.html", "text/html; charset=utf-8")

    return [
        Route("/", page),
        Route("/login", gate.login_page, methods=["GET"]),
        Route("/login", gate.login, methods=["POST"]),
        Route("/logout", gate.logout, methods=["POST"]),
        Route("/static/{name}", static),
        json_route("/api/session", lambda r, s: {"user": gate.user(r), "auth": gate.required}),
        json_route("/api/library", lambda r, s: api.library(s)),
        json_route("/api/search", _search),
        json_route("/api/artist/{artist}", lambda r, s: api.artist(
            s, r.path_params["artist"], k=_int(r, "k", 10, 1, MAX_LIMIT))),
        json_route("/api/song/{song}", lambda r, s: api.song(
            s, _song_id(r.path_params["song"]), k=_int(r, "k", 12, 1, MAX_LIMIT))),
        json_route("/api/maps", lambda r, s: api.map_runs(s)),
        json_route("/api/maps/{run}", lambda r, s: api.map_run(
            s, _number(r.path_params["run"], "map run"))),
        json_route("/api/path", lambda r, s: api.path(s, *_path_args(r))),
        Route("/api/path.m3u8", partial(_playlist, gate, snapshot)),
        Route("/api/stream/{song}", stream),
        # Anything else under /api/ answers in JSON too, never Starlette's plain-text 404.
        Route("/api/{rest:path}", lambda request: _error(404, "no such API call"),
              methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]


def _current(state: Any) -> Any:
    return state.snapshots.current


def static(request: Request) -> Response:
    """A bundled asset by its exact name (no path reaches the file system from the URL)."""
    name = request.path_params["name"]
    if name == "plotly.min.js":
        return _file(plotly_js(), "text/javascript", cache=True)
    if name not in ASSETS:
        return _error(404, f"no asset {name[:60]!r}")
    return _file(STATIC / name, ASSETS[name])


def _file(path: Path, media_type: str, *, cache: bool = False) -> Response:
    headers = dict(SECURITY_HEADERS)
    # The page's own files may change with an upgrade: revalidated every time (cheap: ETag).
    headers["Cache-Control"] = "max-age=86400" if cache else "no-cache"
    return FileResponse(path, media_type=media_type, headers=headers)


def _json(body: dict, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status,
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})


def _error(status: int, message: str) -> JSONResponse:
    return _json({"error": message}, status)


def _refused(gate: Gate, request: Request) -> JSONResponse:
    """401 when a login would help, 403 when no login can (an open explorer's wrong Host)."""
    return _error(401 if gate.required else 403, gate.refusal(request))


def _number(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 9:  # '²' is a digit to isdigit
        raise ExplorerError(400, f"{what} must be a number, not {text[:40]!r}")
    return int(text)


def _song_id(text: str) -> int:
    """'so-12' (the id every answer carries) or plain 12."""
    return _number(text.removeprefix("so-"), "a song id (so-12)")


def _int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ExplorerError(400, f"{name} must be a whole number, not {value[:40]!r}") from None
    if not lo <= number <= hi:
        raise ExplorerError(400, f"{name} must be between {lo} and {hi}, not {number}")
    return number


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name, "").strip()
    if not value:
        raise ExplorerError(400, f"parameter {name} is missing")
    return value


def _search(request: Request, snapshot: Any) -> dict:
    return api.search(snapshot, _required(request, "q")[:200],
                      limit=_int(request, "limit", 20, 1, MAX_LIMIT),
                      artists=request.query_params.get("artists", "1") != "0")


def _path_args(request: Request) -> tuple[int, int, int]:
    return (_song_id(_required(request, "a")), _song_id(_required(request, "b")),
            _int(request, "n", 12, 2, MAX_PATH_SONGS))


def _playlist(gate: Gate, snapshot: Callable[[], Any], request: Request) -> Response:
    """The path as an .m3u8 download (file paths: see explorer_api.playlist_m3u8)."""
    if not gate.allows(request):
        return _refused(gate, request)
    try:
        current = snapshot()
        found = api.path(current, *_path_args(request))
    except ExplorerError as exc:
        return _error(exc.status, exc.message)
    name = f"path-{found['a']}-{found['b']}-{len(found['songs'])}.m3u8"
    return Response(api.playlist_m3u8(current, found["songs"]),
                    media_type="audio/x-mpegurl; charset=utf-8",
                    headers={**SECURITY_HEADERS,
                             "Content-Disposition": f'attachment; filename="{name}"'})
