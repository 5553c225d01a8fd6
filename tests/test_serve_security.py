"""`musicdb serve`'s security and robustness, against real server processes: authentication
(token, password, API key), the rate limit, the bind rule, the users file's permissions, no
CORS, a clean stop, a database never written and read while an ingest writes it."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from musicdb.audio.synth import tag, tone, write_audio
from musicdb.serve.auth import FAILURES
from tests import serving
from tests.serving import MUSICDB, PASSWORD, USER, Server, add_user, copy_library, start_server

server = serving.server  # the module's `musicdb serve` (fixture)
library_db = serving.library_db  # the shared library's database (fixture)

TIMEOUT_S = 120
RELOAD_SECONDS = 1.0  # --reload-seconds of the servers that watch an ingest


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def _token(password: str, salt: str) -> str:
    return hashlib.md5((password + salt).encode()).hexdigest()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --- authentication -----------------------------------------------------------------------


def test_no_credentials_is_error_10_and_every_method_needs_them(server: Server):
    guesser = server.from_address("127.0.0.2")  # failures count towards the rate limit
    for method in ("ping", "getLicense", "getMusicFolders", "ping.view"):
        error = guesser.error(method, auth=False, f="json", v="1.16.1", c="test")
        assert error["code"] == 10, error
        assert "u" in error["message"]
    xml = guesser.get("ping", auth=False)  # the default format: XML, status failed
    assert b'status="failed"' in xml.content
    assert b'code="10"' in xml.content


def test_token_password_and_api_key_let_the_user_in(server: Server):
    assert server.call("ping")["openSubsonic"] is True  # u + t + s
    assert server.call("ping", t=None)  # fresh salt each call (params() makes one)
    plain = server.get("ping", auth=False, u=USER, p=PASSWORD, f="json").json()
    hexed = server.get("ping", auth=False, u=USER, p="enc:" + PASSWORD.encode().hex(),
                       f="json").json()
    keyed = server.get("ping", auth=False, apiKey=server.api_key, f="json").json()
    for body in (plain, hexed, keyed):
        assert body["subsonic-response"]["status"] == "ok", body
    posted = server.client.post(f"{server.url}/rest/getLicense.view",
                                data={"apiKey": server.api_key, "f": "json"}).json()
    assert posted["subsonic-response"]["license"]["valid"] is True  # formPost


def test_wrong_password_is_error_40(server: Server):
    guesser = server.from_address("127.0.0.3")
    salt = "c19b2d"
    for params in ({"u": USER, "t": _token("sesame", salt), "s": salt},
                   {"u": USER, "p": "sesame"},
                   {"u": USER, "p": "enc:" + b"sesame".hex()},
                   {"u": USER, "p": "enc:not-hex"},
                   {"u": "mallory", "t": _token(PASSWORD, salt), "s": salt},
                   {"u": "mallory", "p": PASSWORD}):
        error = guesser.error("ping", auth=False, f="json", **params)
        assert error["code"] == 40, (params, error)


def test_a_token_replayed_with_another_salt_is_error_40(server: Server):
    guesser = server.from_address("127.0.0.4")
    salt = "a1b2c3d4"
    token = _token(PASSWORD, salt)
    ok = guesser.get("ping", auth=False, u=USER, t=token, s=salt, f="json").json()
    assert ok["subsonic-response"]["status"] == "ok"
    error = guesser.error("ping", auth=False, u=USER, t=token, s="another-salt", f="json")
    assert error["code"] == 40


def test_api_key_wrong_is_44_and_with_u_is_43(server: Server):
    guesser = server.from_address("127.0.0.5")
    assert guesser.error("ping", auth=False, apiKey="not-a-key", f="json")["code"] == 44
    assert guesser.error("ping", auth=False, apiKey=guesser.api_key[:-1], f="json")["code"] == 44
    both = guesser.error("ping", auth=False, apiKey=guesser.api_key, u=USER, f="json")
    assert both["code"] == 43
    with_token = guesser.error("ping", auth=False, apiKey=guesser.api_key, t="x", s="y",
                              f="json")
    assert with_token["code"] == 43
    password_and_token = guesser.error("ping", auth=False, u=USER, p=PASSWORD, t="x", s="y",
                                      f="json")
    assert password_and_token["code"] == 43


def test_open_subsonic_extensions_are_public_and_unknown_methods_404(server: Server):
    # The OpenSubsonic specification: getOpenSubsonicExtensions "must be publicly accessible".
    body = server.get("getOpenSubsonicExtensions", auth=False, f="json").json()
    names = {e["name"]: e["versions"] for e in body["subsonic-response"]["openSubsonicExtensions"]}
    assert names["apiKeyAuthentication"] == [1]
    assert names["formPost"] == [1]
    assert names["sonicSimilarity"] == [1]  # getSonicSimilarTracks, findSonicPath
    unknown = server.get("noSuchMethod")
    assert unknown.status_code == 404
    assert unknown.json()["subsonic-response"]["error"]["code"] == 0


def test_no_cors_headers_anywhere(server: Server):
    origin = {"Origin": "http://evil.example"}
    responses = [
        server.client.get(f"{server.url}/rest/ping", params=server.params(), headers=origin),
        server.client.get(f"{server.url}/rest/ping", headers=origin),
        server.client.get(f"{server.url}/rest/getMusicFolders", params=server.params("xml"),
                          headers=origin),
        server.client.get(f"{server.url}/rest/nope", headers=origin),
        server.client.get(f"{server.url}/", headers=origin),
        server.client.options(f"{server.url}/rest/ping", headers={
            **origin, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"}),
        server.client.options(f"{server.url}/", headers={
            **origin, "Access-Control-Request-Method": "POST"}),
    ]
    for response in responses:
        cors = [h for h in response.headers if h.lower().startswith("access-control-")]
        assert not cors, (response.request.url, response.headers)
    assert responses[5].status_code in (404, 405)  # a preflight is not answered as allowed


def test_the_rate_limit_cools_a_guessing_address_down(library_db: Path, tmp_path: Path):
    started = start_server(library_db, tmp_path)  # its own process: the limit is per server
    running = started.from_address("127.0.0.8")
    try:
        for n in range(FAILURES):
            error = running.error("ping", auth=False, u=USER, p=f"guess-{n}", f="json")
            assert error["code"] == 40
            assert "too many" not in error["message"]
        # Now even the right password is refused without being checked, for the cool-down.
        cooled = running.error("ping", f="json")
        assert cooled["code"] == 40
        assert "too many failed attempts" in cooled["message"]
        assert running.error("ping", auth=False, apiKey=running.api_key,
                             f="json")["code"] == 40
        # ... from that address only: the limit is per client address.
        assert running.from_address("127.0.0.9").call("ping")
    finally:
        assert started.stop() == 0


def _lan_address() -> str | None:
    """This machine's address towards the network (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_on_the_network_a_user_is_needed_even_after_the_last_is_removed(library_db: Path,
                                                                       tmp_path: Path):
    lan = _lan_address()
    if lan is None:
        pytest.skip("this machine has no network address to connect from")
    running = start_server(library_db, tmp_path, host="0.0.0.0")
    port = running.url.rsplit(":", 1)[1]
    try:
        with httpx.Client(timeout=60) as client:  # from the LAN address: not loopback
            ok = client.get(f"http://{lan}:{port}/rest/ping", params=running.params())
            assert ok.json()["subsonic-response"]["status"] == "ok"
            proc = subprocess.run([MUSICDB, "user", "remove", USER, "--users",
                                   str(running.users_file)], capture_output=True, text=True,
                                  timeout=TIMEOUT_S)
            assert proc.returncode == 0, proc.stderr
            for path in ("/", "/rest/ping", "/api/search?q=a"):
                refused = client.get(f"http://{lan}:{port}{path}",
                                     headers={"Host": f"127.0.0.1:{port}"})
                assert refused.status_code == 403, (path, refused.text)
                assert "musicdb user add" in refused.text
        # This machine is still answered (the explorer opens to it without users).
        assert running.get("ping").json()["subsonic-response"]["error"]["code"] == 40
    finally:
        assert running.stop() == 0


# --- starting and stopping ----------------------------------------------------------------


def test_a_non_loopback_bind_without_a_user_is_refused(library_db: Path, tmp_path: Path):
    port = _free_port()
    for host in ("0.0.0.0", "::", "192.0.2.1", "example.org"):
        proc = subprocess.run([MUSICDB, "serve", "--db", str(library_db), "--host", host,
                               "--port", str(port), "--users", str(tmp_path / "none.json")],
                              capture_output=True, text=True, timeout=TIMEOUT_S)
        assert proc.returncode == 1, proc.stderr
        line = _one_error_line(proc.stderr)
        assert "no user configured" in line
        assert "musicdb user add" in line
        assert not _listening(port)


def test_port_in_use_and_a_missing_database_are_one_line(library_db: Path, tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([MUSICDB, "serve", "--db", str(library_db), "--port", str(port),
                               "--users", str(tmp_path / "none.json")],
                              capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 1
    assert "in use" in _one_error_line(proc.stderr)
    (tmp_path / "not.duckdb").write_text("hello, I am text\n")
    for db, says in ((tmp_path / "missing.duckdb", "no database at"),
                     (tmp_path / "not.duckdb", "not a"),
                     (tmp_path, "directory")):
        proc = subprocess.run([MUSICDB, "serve", "--db", str(db), "--port", "0",
                               "--users", str(tmp_path / "none.json")],
                              capture_output=True, text=True, timeout=TIMEOUT_S)
        assert proc.returncode in (1, 2), proc.stderr
        assert says in _one_error_line(proc.stderr)


def test_sigterm_stops_cleanly(library_db: Path, tmp_path: Path):
    # Ctrl-C (SIGINT) is how the `server` fixture stops every module's server, checked there.
    running = start_server(library_db, tmp_path)
    assert "(6 songs)" in running.start_line, running.start_line
    assert running.call("ping")
    assert running.stop(signal.SIGTERM) == 0, running.stderr()
    assert running.stderr().rstrip().endswith("musicdb serve: stopped")
    assert "Traceback" not in running.stderr()


# --- the users file -----------------------------------------------------------------------


def test_users_file_is_owner_only_and_refused_when_others_can_read(library_db: Path,
                                                                   tmp_path: Path):
    users_file = tmp_path / "config" / "musicdb" / "users.json"
    api_key = add_user(users_file)
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(users_file.parent.stat().st_mode) == 0o700
    assert PASSWORD in users_file.read_text()  # as documented: token auth needs it
    listed = subprocess.run([MUSICDB, "user", "list", "--users", str(users_file)],
                            capture_output=True, text=True, timeout=TIMEOUT_S)
    assert listed.stdout.split() == [USER]
    assert PASSWORD not in listed.stdout + listed.stderr
    keys = subprocess.run([MUSICDB, "user", "list", "--api-keys", "--users", str(users_file)],
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert keys.stdout == f"{USER}\t{api_key}\n"  # OpenSubsonic: keys can be viewed

    users_file.chmod(0o644)
    for command in (["serve", "--db", str(library_db), "--port", "0"],
                    ["user", "list"], ["user", "remove", USER]):
        proc = subprocess.run([MUSICDB, *command, "--users", str(users_file)],
                              capture_output=True, text=True, timeout=TIMEOUT_S)
        assert proc.returncode == 1, (command, proc.stderr)
        assert f"chmod 600 {users_file}" in _one_error_line(proc.stderr)
    added = subprocess.run([MUSICDB, "user", "add", "bob", "--password-stdin", "--users",
                            str(users_file)], input="pw\n", capture_output=True, text=True,
                           timeout=TIMEOUT_S)
    assert added.returncode == 1
    assert "chmod 600" in _one_error_line(added.stderr)

    users_file.chmod(0o600)
    removed = subprocess.run([MUSICDB, "user", "remove", USER, "--users", str(users_file)],
                             capture_output=True, text=True, timeout=TIMEOUT_S)
    assert removed.returncode == 0, removed.stderr
    assert USER not in users_file.read_text()


def test_user_add_without_a_terminal_asks_for_password_stdin(tmp_path: Path):
    proc = subprocess.run([MUSICDB, "user", "add", "bob", "--users", str(tmp_path / "u.json")],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert proc.returncode == 2
    assert "--password-stdin" in _one_error_line(proc.stderr)
    assert not (tmp_path / "u.json").exists()


def test_a_user_added_while_serving_can_log_in_and_a_removed_one_cannot(server: Server):
    guesser = server.from_address("127.0.0.6")
    key = add_user(guesser.users_file, "carol", "carol's own password")
    assert guesser.get("ping", auth=False, apiKey=key, f="json").json()[
        "subsonic-response"]["status"] == "ok"
    proc = subprocess.run([MUSICDB, "user", "remove", "carol", "--users",
                           str(guesser.users_file)], capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
    assert guesser.error("ping", auth=False, apiKey=key, f="json")["code"] == 44


# --- the database: never written, read while an ingest writes it ---------------------------


def _file_state(db: Path) -> tuple:
    wal = db.with_name(db.name + ".wal")
    return (hashlib.sha256(db.read_bytes()).hexdigest(), db.stat().st_mtime_ns,
            wal.exists())


def test_the_server_never_writes_the_database(library_db: Path, tmp_path: Path):
    db = copy_library(library_db, tmp_path)
    before = _file_state(db)
    running = start_server(db, tmp_path)
    try:
        for method in ("ping", "getLicense", "getMusicFolders", "getOpenSubsonicExtensions",
                       "noSuchMethod"):
            running.get(method)
            running.get(method, fmt=None)
        for n in range(3):
            running.get("ping", auth=False, u=USER, p=f"wrong-{n}")
    finally:
        assert running.stop() == 0
    assert _file_state(db) == before


def _new_songs(folder: Path, count: int) -> None:
    for n in range(count):
        path = folder / f"{n:02d} Late Song {n}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_audio(path, tone(220 + 55 * n, 2.5, amp=0.3))
        tag(path, artist="Late Arrival", album="Afterwards", title=f"Late Song {n}",
            tracknumber=str(n + 1))


def _folders(running: Server) -> list[str]:
    return [f["name"] for f in running.call("getMusicFolders")["musicFolders"]["musicFolder"]]


def test_it_keeps_answering_while_an_ingest_writes_and_then_shows_the_new_songs(
        library_db: Path, tmp_path: Path):
    db = copy_library(library_db, tmp_path)
    new = tmp_path / "later"
    _new_songs(new, 4)
    running = start_server(db, tmp_path, args=("--reload-seconds", str(RELOAD_SECONDS)))
    try:
        assert "later" not in _folders(running)
        ingesting = subprocess.Popen([MUSICDB, "ingest", str(new), "--db", str(db),
                                      "--workers", "1"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        answered, slowest = 0, 0.0
        while ingesting.poll() is None:  # every call succeeds while the ingest writes
            started = time.monotonic()
            assert running.call("ping")
            _folders(running)
            slowest = max(slowest, time.monotonic() - started)
            answered += 1
        _, ingest_err = ingesting.communicate(timeout=TIMEOUT_S)
        assert ingesting.returncode == 0, ingest_err
        assert "4 new" in ingest_err
        assert answered > 0
        finished = time.monotonic()
        deadline = finished + RELOAD_SECONDS + 60  # the reload interval + a loaded machine
        while "later" not in _folders(running):
            assert time.monotonic() < deadline, running.stderr()
            time.sleep(0.2)
        print(f"{answered} calls during the ingest (slowest {slowest:.3f} s); the new songs "
              f"showed {time.monotonic() - finished:.1f} s after it ended")
    finally:
        assert running.stop() == 0, running.stderr()
    assert "could not reload" not in running.stderr()


def test_environment_is_isolated():
    # The fixtures pass --users explicitly; a developer's own users file is never touched.
    assert "MUSICDB_USERS" not in os.environ
    assert not Path.home().joinpath(".config", "musicdb", "users.json").exists()


@pytest.mark.parametrize("path", ["/rest/ping", "/rest/ping.view"])
def test_head_and_post_reach_the_same_methods(server: Server, path: str):
    guesser = server.from_address("127.0.0.7")
    response = guesser.client.post(f"{guesser.url}{path}", data=guesser.params())
    assert response.json()["subsonic-response"]["status"] == "ok"
    refused = guesser.client.post(f"{guesser.url}{path}", data={"u": USER, "p": "nope",
                                                               "f": "json"})
    assert refused.json()["subsonic-response"]["error"]["code"] == 40
    assert guesser.client.head(f"{guesser.url}{path}", params=guesser.params()).status_code == 200


def test_a_failed_reload_keeps_the_old_snapshot_with_one_line(library_db: Path,
                                                              tmp_path: Path):
    import duckdb

    db = copy_library(library_db, tmp_path)
    running = start_server(db, tmp_path, args=("--reload-seconds", str(RELOAD_SECONDS)))
    try:
        folders = _folders(running)
        writer = duckdb.connect(str(db))  # a writer keeps every reader out
        try:
            os.utime(db)  # the file looks changed: the server tries to reload, and cannot
            deadline = time.monotonic() + RELOAD_SECONDS + 60
            while "could not reload" not in running.stderr():
                assert time.monotonic() < deadline, running.stderr()
                assert _folders(running) == folders  # the old snapshot answers meanwhile
                time.sleep(0.2)
        finally:
            writer.close()
        os.utime(db)
        deadline = time.monotonic() + RELOAD_SECONDS + 60
        while "reloaded" not in running.stderr():
            assert time.monotonic() < deadline, running.stderr()
            time.sleep(0.2)
        assert _folders(running) == folders
    finally:
        assert running.stop() == 0
    failures = [line for line in running.lines if "could not reload" in line]
    assert len(failures) == 1, running.stderr()  # one line, not one per retry
    assert "open for writing" in failures[0]
    assert "Traceback" not in running.stderr()
