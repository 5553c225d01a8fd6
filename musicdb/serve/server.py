"""Running the app: the bind checks, the socket, uvicorn, a clean stop.

The socket is bound here, before uvicorn starts, so a port in use or a refused address is one
line (ServeError) rather than uvicorn's log and exit code 3, and port 0 picks a free port
whose number the start line shows. Ctrl-C and SIGTERM stop uvicorn gracefully (open
requests finish) and `serve()` returns normally: the command exits 0 with one line.

With `workers` > 1, uvicorn's own supervisor (Multiprocess) runs that many processes on the
one socket, each building the app with worker_app() and so its own snapshot: one Python
process answers on one core at a time (the GIL), N use N cores, for N times the memory. The
supervisor replaces a worker that dies and stops when one cannot start (exit code 3).
"""

from __future__ import annotations

import errno
import importlib.abc
import importlib.util
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess

from musicdb.errors import MusicdbError, ServeError
from musicdb.serve.app import ServeConfig, build_app
from musicdb.serve.snapshot import probe
from musicdb.serve.users import load as load_users

CONFIG_ENV = "MUSICDB_SERVE_WORKER_CONFIG"  # the ServeConfig the parent hands its workers
UVICORN = {"log_level": "warning", "server_header": False, "date_header": False,
           "lifespan": "on", "access_log": False, "timeout_graceful_shutdown": 5}

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost. Any other name counts as reachable from elsewhere."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, users: dict) -> None:
    if not users and not is_loopback(host):
        raise ServeError(f"refusing to serve on {host} with no user configured: anyone who can "
                         "reach it could read the whole library. Add one with `musicdb user "
                         "add NAME`, or serve on 127.0.0.1 (the default)")


def bind(host: str, port: int) -> socket.socket:
    bind_host = "127.0.0.1" if host.lower() in LOOPBACK_NAMES else host.strip("[]")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            bind_host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ServeError(f"cannot serve on {host}: {exc.strerror}") from exc
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart within TIME_WAIT
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(f"port {port} on {host} is in use (another musicdb serve, or "
                             "another program): stop it, or pass another --port") from exc
        raise ServeError(f"cannot serve on {host} port {port}: {exc.strerror}") from exc
    # Listening now: a client that connects as soon as it reads the start line is queued
    # instead of refused while uvicorn starts.
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@dataclass(frozen=True)
class Started:
    url: str
    songs: int
    users: list[str]


class _Server(uvicorn.Server):
    """uvicorn's Server, except that a Ctrl-C or SIGTERM it handled is not raised again once it
    has stopped (uvicorn re-raises it so a wrapping program dies of it): the stop is the
    normal end of `musicdb serve`."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: do not wait for open requests
        else:
            self.should_exit = True


def serve(config: ServeConfig, host: str, port: int,
          announce: Callable[[Started], None], *, workers: int = 1) -> None:
    """Serve until Ctrl-C or SIGTERM. Problems before listening are ServeError/StoreError."""
    check_bind(host, load_users(config.users_file))  # before anything else: nothing listens
    if workers > 1:
        _serve_workers(config, host, port, announce, workers)
        return
    _quiet_and_fast()
    app = build_app(config)  # loads the first snapshot: a database problem stops here
    state = app.state.musicdb
    sock = bind(host, port)
    try:
        announce(Started(url=_url(host, sock.getsockname()[1]),
                         songs=state.snapshots.current.songs, users=sorted(state.users())))
        server = _Server(uvicorn.Config(app, **UVICORN))
        server.run(sockets=[sock])
    finally:
        sock.close()


def _serve_workers(config: ServeConfig, host: str, port: int,
                   announce: Callable[[Started], None], workers: int) -> None:
    songs = probe(config.db)  # the file's problems as one line, before any worker starts
    sock = bind(host, port)
    try:
        _quiet_and_fast()
        os.environ[CONFIG_ENV] = _config_to_env(config)
        announce(Started(url=_url(host, sock.getsockname()[1]), songs=songs,
                         users=sorted(load_users(config.users_file))))
        supervisor = Multiprocess(uvicorn.Config(f"{__name__}:worker_app", factory=True,
                                                 workers=workers, **UVICORN), sockets=[sock])
        supervisor.run()
    finally:
        sock.close()
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        raise ServeError("a worker could not start (its line is above): stopped")


def worker_app():
    """The app of one `--workers` process, with its own snapshot (uvicorn calls this in each
    worker). A database that turned bad since the parent's probe is the worker's one line
    and exit code 3, which makes the supervisor stop instead of restarting it."""
    _quiet_and_fast()
    try:
        return build_app(_config_from_env(os.environ[CONFIG_ENV]))
    except MusicdbError as exc:
        print(f"musicdb serve: worker {os.getpid()}: {exc}", file=sys.stderr, flush=True)
        sys.exit(STARTUP_FAILURE)


def _config_to_env(config: ServeConfig) -> str:
    return json.dumps({"db": str(config.db), "users_file": str(config.users_file),
                       "reload_seconds": config.reload_seconds,
                       "playlists": None if config.playlists is None else str(config.playlists)})


def _config_from_env(text: str) -> ServeConfig:
    given = json.loads(text)
    return ServeConfig(db=Path(given["db"]), users_file=Path(given["users_file"]),
                       reload_seconds=given["reload_seconds"],
                       playlists=None if given["playlists"] is None else Path(given["playlists"]))


def _quiet_and_fast() -> None:
    """Every serving process: musicdb's log lines on stderr, no traceback for a request
    cancelled at the stop, no pandas probing on every DuckDB call."""
    _no_pandas_imports()
    _log_to_stderr()
    errors = logging.getLogger("uvicorn.error")
    if _no_cancelled_tracebacks not in errors.filters:
        errors.addFilter(_no_cancelled_tracebacks)


def _no_cancelled_tracebacks(record: logging.LogRecord) -> bool:
    """A request still open 5 s after Ctrl-C (a long download) is cancelled; uvicorn says so
    in one line ("Cancel 1 running task(s)") and then logs the task's CancelledError with its
    whole traceback, which says nothing more."""
    import asyncio

    error = record.exc_info[1] if record.exc_info else None
    return not isinstance(error, asyncio.CancelledError)


class _NoPandas(importlib.abc.MetaPathFinder):
    """Answers `import pandas` with ModuleNotFoundError at once, without searching sys.path."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname == "pandas":
            raise ModuleNotFoundError("No module named 'pandas'", name="pandas")


def _no_pandas_imports() -> None:
    """Make `import pandas` fail at once when pandas is not installed.

    DuckDB's Python client tries to import pandas on every execute (to recognise DataFrame
    parameters); without pandas each try searches sys.path under the import lock: ~a fifth of
    a busy server's time (py-spy), serialising the request threads. Measured with 10 threads
    of point queries: 2,300 -> 3,300-4,000 queries/s. The finder raises the very error a
    missing pandas gives, so every `import pandas` behaves as before, only faster; safe
    because pandas is absent (checked first: installed, it is left alone). The one change:
    importlib.util.find_spec("pandas") raises that error too instead of answering None
    (nothing the server runs asks). Not a None in sys.modules: Cython modules (pyarrow's
    pandas probe) take a None found there for the module and fail."""
    if any(isinstance(finder, _NoPandas) for finder in sys.meta_path):
        return
    if importlib.util.find_spec("pandas") is None:
        sys.meta_path.insert(0, _NoPandas())


def _url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _log_to_stderr() -> None:
    """musicdb.serve's log lines (a failed reload) as plain lines on stderr."""
    logger = logging.getLogger("musicdb.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
        logger.propagate = False
