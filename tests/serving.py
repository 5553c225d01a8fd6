"""A real `musicdb serve` for tests: a small generated library, ingested once, and a server
process on a free loopback port.

Use it from a test module:

    from tests import serving
    from tests.serving import Server

    server = serving.server  # the fixture: a module-scoped `musicdb serve`

    def test_ping(server: Server):
        assert server.call("ping")["status"] == "ok"         # token auth, f=json
        songs = server.call("search3", query="Song")["searchResult3"]["song"]
        xml = server.xml("getArtists")                        # an ElementTree element
        raw = server.get("stream", id=songs[0]["id"])          # httpx.Response, authenticated

`server` is module-scoped: one `.venv/bin/musicdb serve` process per test module, started on
port 0 (the server picks a free port and prints it in its start line), with the user
USER / PASSWORD created by `musicdb user add --password-stdin` in a users file of its own, and
stopped with SIGINT at the end of the module (the fixture checks it exits 0 and says
"musicdb serve: stopped"). The library (LIBRARY_SONGS: three artists, two albums, 2.5 s songs
in FLAC and Ogg Vorbis, one FLAC with an embedded PNG cover) is generated and ingested once
per test run and shared by every module (`library_db`); servers only read it. A test that
writes to its database (an ingest while serving) copies it first:
`copy_library(library_db, folder)`.

For a server of your own (other options, another database): `start_server(db, folder, ...)`
returns a running Server; call `.stop()` (returns the exit code) when done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from mutagen.flac import FLAC, Picture

from musicdb.audio.synth import clicks, noise, tag, tone, write_audio

MUSICDB = str(Path(sys.executable).with_name("musicdb"))
USER, PASSWORD = "alice", "correct horse battery staple"
API_VERSION = "1.16.1"
START_TIMEOUT_S = 120.0  # a loaded 2-core machine; the start line comes in ~2 s when idle
SECONDS = 2.5
# (artist, album, track, title, extension, recipe seed): three artists with distinct sounds.
LIBRARY_SONGS = [
    ("Drone Choir", "Long Hum", 1, "Low Hum", ".flac", 0),
    ("Drone Choir", "Long Hum", 2, "High Hum", ".flac", 1),
    ("Click Machine", "Beats", 1, "Fast Clicks", ".ogg", 2),
    ("Click Machine", "Beats", 2, "Slow Clicks", ".flac", 3),
    ("Noise Garden", "Weeds", 1, "Soft Noise", ".flac", 4),
    ("Noise Garden", "Weeds", 2, "Loud Noise", ".ogg", 5),
]
COVERED = "Low Hum"  # the song whose file embeds a cover (PNG)


def _signal(artist: str, seed: int) -> np.ndarray:
    if artist == "Drone Choir":
        y = tone(110 * (1 + seed), SECONDS, amp=0.3) + tone(165 * (1 + seed), SECONDS, amp=0.2)
    elif artist == "Click Machine":
        y = clicks(100 + 40 * seed, SECONDS) + noise(SECONDS, amp=0.02, seed=seed)
    else:
        y = noise(SECONDS, amp=0.1 + 0.05 * seed, seed=seed)
    return np.clip(y, -1, 1).astype(np.float32)


def png(width: int = 4, height: int = 4, rgb: tuple[int, int, int] = (200, 30, 60)) -> bytes:
    """A small valid PNG (a cover image), written by hand: no imaging library needed."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                                  0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def make_library(folder: Path) -> list[Path]:
    """folder/<artist>/<album>/<nn title>.<ext>, tagged; returns the files."""
    paths = []
    for artist, album, track, title, ext, seed in LIBRARY_SONGS:
        path = folder / artist / album / f"{track:02d} {title}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_audio(path, _signal(artist, seed))
        tag(path, artist=artist, album=album, title=title, tracknumber=str(track),
            genre="Synthetic", date="2026")
        if title == COVERED:
            flac = FLAC(path)
            picture = Picture()
            picture.type, picture.mime, picture.data = 3, "image/png", png()
            flac.add_picture(picture)
            flac.save()
        paths.append(path)
    return paths


def ingest(library: Path, db: Path) -> None:
    proc = subprocess.run([MUSICDB, "ingest", str(library), "--db", str(db), "--workers", "1"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr


def _build(folder: Path) -> None:
    make_library(folder / "library")
    ingest(folder / "library", folder / "music.duckdb")


@pytest.fixture(scope="module")
def library_db(built_once) -> Path:
    """The shared library's database (read it only; copy_library() for one to write)."""
    return built_once("serve-library", _build) / "music.duckdb"


def copy_library(source_db: Path, folder: Path) -> Path:
    """A copy of the shared database that a test may write to (an ingest of new songs from
    a folder of its own). Its songs' files stay in the shared library: never change those."""
    db = folder / "music.duckdb"
    shutil.copyfile(source_db, db)
    return db


def add_user(users_file: Path, name: str = USER, password: str = PASSWORD) -> str:
    """`musicdb user add NAME --password-stdin`; returns the API key it prints."""
    proc = subprocess.run([MUSICDB, "user", "add", name, "--password-stdin", "--users",
                           str(users_file)], input=password + "\n", capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@dataclass
class Server:
    """A running `musicdb serve` process and an authenticated client for it."""

    url: str
    db: Path
    users_file: Path
    process: subprocess.Popen
    api_key: str | None
    user: str = USER
    password: str = PASSWORD
    start_line: str = ""
    lines: list[str] = field(default_factory=list)  # its stderr so far
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60))
    clients: list[httpx.Client] = field(default_factory=list)  # from_address()'s
    drain: threading.Thread | None = None

    def params(self, fmt: str | None = "json", **extra) -> dict:
        """Token auth (u, t = md5(password + s), s) with a fresh salt, v, c, f."""
        salt = secrets.token_hex(6)
        token = hashlib.md5((self.password + salt).encode()).hexdigest()
        base = {"u": self.user, "t": token, "s": salt, "v": API_VERSION, "c": "musicdb-tests"}
        if fmt:
            base["f"] = fmt
        return {**base, **{k: v for k, v in extra.items() if v is not None}}

    def get(self, method: str, *, fmt: str | None = "json", auth: bool = True,
            **params) -> httpx.Response:
        """GET /rest/<method>; with auth=False only the given parameters are sent."""
        query = self.params(fmt, **params) if auth else params
        return self.client.get(f"{self.url}/rest/{method}", params=query)

    def call(self, method: str, **params) -> dict:
        """The JSON subsonic-response of a call that must succeed."""
        response = self.get(method, **params)
        assert response.status_code == 200, response.text
        body = response.json()["subsonic-response"]
        assert body["status"] == "ok", body
        return body

    def error(self, method: str, **params) -> dict:
        """The JSON error of a call that must fail ({"code": .., "message": ..})."""
        response = self.get(method, **params)
        body = response.json()["subsonic-response"]
        assert body["status"] == "failed", body
        return body["error"]

    def xml(self, method: str, **params) -> ET.Element:
        response = self.get(method, fmt=None, **params)
        assert response.status_code == 200, response.text
        return ET.fromstring(response.content)

    def from_address(self, address: str) -> Server:
        """The same server seen from another loopback address (127.0.0.2, ...): a test that
        fails logins on purpose uses one of its own, so the rate limit (per client address)
        it builds up does not lock other tests out."""
        transport = httpx.HTTPTransport(local_address=address)
        client = httpx.Client(timeout=60, transport=transport)
        self.clients.append(client)  # the list is shared with the copy: stop() closes it
        return dataclasses.replace(self, client=client)

    def stop(self, sig: int = signal.SIGINT) -> int:
        """Stop it as Ctrl-C would; its exit code."""
        for client in (self.client, *self.clients):
            client.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            if self.drain is not None:
                self.drain.join(timeout=10)
            self.process.stderr.close()

    def stderr(self) -> str:
        return "".join(self.lines)


def _drain(stream, lines: list[str], first: threading.Event) -> None:
    for line in stream:
        lines.append(line)
        first.set()
    first.set()


def start_server(db: Path, folder: Path, *, host: str = "127.0.0.1", user: str | None = USER,
                 password: str = PASSWORD, args: tuple[str, ...] = ()) -> Server:
    """`musicdb serve --db DB --host HOST --port 0 --users folder/users/users.json`, with the
    user added first (none with user=None), once it answers ping."""
    users_file = folder / "users" / "users.json"
    api_key = add_user(users_file, user, password) if user else None
    process = subprocess.Popen(
        [MUSICDB, "serve", "--db", str(db), "--host", host, "--port", "0", "--users",
         str(users_file), *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    first = threading.Event()
    drain = threading.Thread(target=_drain, args=(process.stderr, lines, first), daemon=True)
    drain.start()
    if not first.wait(START_TIMEOUT_S) or not lines or process.poll() is not None:
        process.kill()
        process.wait()
        drain.join(timeout=10)
        process.stderr.close()
        raise AssertionError(f"musicdb serve did not start: {''.join(lines)}")
    found = re.search(r"at (http://\S+:(\d+))", lines[0])
    assert found, lines[0]
    url = found[1] if host not in ("0.0.0.0", "::") else f"http://127.0.0.1:{found[2]}"
    server = Server(url=url, db=db, users_file=users_file, process=process,
                    api_key=api_key, user=user or USER, password=password,
                    start_line=lines[0], lines=lines, drain=drain)
    _wait_until_answering(server)
    return server


def _wait_until_answering(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            server.client.get(f"{server.url}/rest/ping", timeout=5)
            return
        except httpx.TransportError as exc:
            if time.monotonic() > deadline or server.process.poll() is not None:
                server.process.kill()
                raise AssertionError(f"musicdb serve does not answer: {server.stderr()}") from exc
            time.sleep(0.1)


@pytest.fixture(scope="module")
def server(library_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A `musicdb serve` of the shared library for this test module (see the docstring)."""
    running = start_server(library_db, tmp_path_factory.mktemp("served"))
    yield running
    code = running.stop()
    assert code == 0, running.stderr()
    assert "musicdb serve: stopped" in running.stderr()
