"""`musicdb serve` under load: 50 concurrent clients on loopback calling getSimilarSongs2,
search3 and getSonicSimilarTracks, on synthetic libraries of 100,000 and 1,000,000 songs, then
the same load while `musicdb ingest` writes to the database.

    python benchmarks/serve.py --size 100k                 # 30 s per phase
    python benchmarks/serve.py --size 1m --seconds 30
    python benchmarks/serve.py --size 100k --seconds 5 --clients 10   # a quick look
    python benchmarks/serve.py --size 1m --workers 2       # `musicdb serve --workers 2`

The library (cached in benchmarks/.cache/serve-<size>.duckdb; delete it to rebuild) is made
through the real tables: a few generated songs are ingested first (so the 'default' feature
set is the one `musicdb ingest` extracts, and a later ingest adds to it), then the synthetic
songs are written beside them: files that do not exist under a made-up root (nothing here
streams), tags naming 2,000 / 20,000 artists, 131 feature values scattered around each
artist's centre as in benchmarks/similar.py, and the similarity tables refreshed as an ingest
does. Every run works on a copy of that file, with a user added by
`musicdb user add --password-stdin` to a users file of its own, and a real `musicdb serve`
process on a free port.

Each phase: a warm-up (the server builds its approximate index in the background at start,
answering exactly meanwhile; --warmup), then `--clients` closed-loop clients (asyncio +
aiohttp, one keep-alive connection each), each request a random one of the three methods (or of
--methods) with a random song id or search word. Printed: requests per second, p50 / p99
latency and errors (an HTTP status other than 200 or a Subsonic status other than ok) per
method, the server's peak RSS, and the machine's load average (the clients run on the same
cores as the server). Beside the latency the clients see, the server's own (its Server-Timing
`total`: from the parsed request to the rendered body, p50 / p99), and the CPU seconds per
request of the server process and of this one (the clients), so the table says how much of
the machine the clients took.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CACHE = REPO / "benchmarks" / ".cache"
MUSICDB = str(Path(sys.executable).with_name("musicdb"))
SIZES = {"100k": (100_000, 2_000), "1m": (1_000_000, 20_000)}
N_FEATURES = 131
USER, PASSWORD = "bench", "load test password"
METHODS = ("getSimilarSongs2", "search3", "getSonicSimilarTracks")
CHOSEN = list(METHODS)  # what the clients call (--methods)
FAKE_ROOT = "/nonexistent/musicdb-bench"
SERVER_TOTAL = re.compile(r"total;dur=([0-9.]+)")


# --- the library ---------------------------------------------------------------------------
def generated_songs(folder: Path, count: int, *, seconds: float = 3.0, seed: int = 0) -> Path:
    from musicdb.audio import synth

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        hz = float(rng.uniform(110, 880))
        y = synth.tone(hz, seconds, amp=0.3) + synth.noise(seconds, amp=0.05, seed=seed + i)
        if i % 2:
            y = y + synth.clicks(float(rng.uniform(80, 160)), seconds)
        path = synth.write_audio(folder / f"gen{seed}-{i:03d}.flac", y)
        synth.tag(path, artist=f"Generated {i % 5}", album=f"Run {seed}", title=f"Gen {i}")
    return folder


def ingest_command(folder: Path, db: Path) -> list[str]:
    return [MUSICDB, "ingest", str(folder), "--db", str(db), "--feature-set", "default",
            "--snippet-seconds", "0", "--workers", "1"]


def ingest(folder: Path, db: Path) -> subprocess.CompletedProcess:
    return subprocess.run(ingest_command(folder, db), capture_output=True, text=True)


def build(db: Path, songs: int, artists: int) -> float:
    """Seed songs through `musicdb ingest`, then the synthetic ones written beside them."""
    import pyarrow as pa

    from musicdb.store import database as store

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        done = ingest(generated_songs(Path(tmp) / "seed", 3), db)
        if done.returncode:
            sys.exit(f"seed ingest failed: {done.stderr}")
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (artists, N_FEATURES)) * rng.uniform(0.1, 1000, N_FEATURES)
    who = rng.integers(0, artists, songs)
    values = centres[who] + rng.normal(0, 0.5, (songs, N_FEATURES)) * np.abs(centres[who] * 0.2)
    n = np.arange(songs)
    artist = np.char.add("Artist ", np.char.zfill(who.astype(str), 5))
    album = np.char.add(artist, np.char.add(" - Album ", (n % 4).astype(str)))
    path = np.char.add(np.char.add(f"{FAKE_ROOT}/", artist),
                       np.char.add("/song", np.char.add(n.astype(str), ".flac")))
    table = pa.table({
        "n": n, "path": path, "artist": artist, "album": album,
        "title": np.char.add("Song ", n.astype(str)), "track": (n % 12 + 1).astype(np.int32),
        "vals": pa.FixedSizeListArray.from_arrays(pa.array(values.astype(np.float32).ravel()),
                                                  N_FEATURES)})
    del values
    with store.connect(db) as con:
        set_id = con.execute("SELECT feature_set_id FROM latest_feature_sets "
                             "WHERE feature_set = 'default'").fetchone()[0]
        con.execute("SET enable_progress_bar = false")
        con.register("synth", table)
        con.execute("BEGIN")
        con.execute(f"""
            INSERT INTO songs (song_id, source, status, path, root, folder, content_hash,
                               size_bytes, mtime_ns, codec, sample_rate, channels, duration_s,
                               title, artist, album, genre, track, year)
            SELECT nextval('song_id_seq'), 'scan', 'ok', path, '{FAKE_ROOT}', artist,
                   md5(path), 4000000, 0, 'FLAC', 44100, 2, 180.0, title, artist, album,
                   'Synthetic', track, 2000 + n % 25
            FROM synth ORDER BY n""")
        con.execute("INSERT INTO features SELECT s.song_id, ?, -1, 0.0, 180.0, t.vals::FLOAT[] "
                    "FROM synth t JOIN songs s USING (path)", [set_id])
        con.execute("COMMIT")
        con.unregister("synth")
        store.refresh_similarity(con)
    return time.perf_counter() - started


def library(size: str) -> Path:
    songs, artists = SIZES[size]
    db = CACHE / f"serve-{size}.duckdb"
    if db.exists():
        print(f"{size}: {songs:,} synthetic songs in {artists:,} artists, cached in {db.name}")
    else:
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = db.with_suffix(".partial.duckdb")
        partial.unlink(missing_ok=True)
        seconds = build(partial, songs, artists)
        partial.rename(db)
        print(f"{size}: {songs:,} synthetic songs in {artists:,} artists, built in "
              f"{seconds:.0f} s, cached in {db.name}")
    return db


# --- the server ----------------------------------------------------------------------------
@dataclass
class Server:
    url: str
    process: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    peak_rss_mb: float = 0.0

    def rss_mb(self) -> float:
        """Of the server and its workers (--workers), together."""
        total = 0.0
        for pid in process_tree(self.process.pid):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except FileNotFoundError:
                continue
            found = re.search(r"VmRSS:\s+(\d+) kB", status)
            total += int(found[1]) / 1024 if found else 0.0
        return total

    def stop(self) -> int:
        self.process.send_signal(2)  # SIGINT: uvicorn's clean stop
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (a `--workers` server's workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


def start_server(db: Path, folder: Path, workers: int = 1) -> Server:
    users = folder / "users" / "users.json"
    subprocess.run([MUSICDB, "user", "add", USER, "--password-stdin", "--users", str(users)],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    process = subprocess.Popen([MUSICDB, "serve", "--db", str(db), "--port", "0", "--users",
                                str(users), "--workers", str(workers)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    server = Server(url="", process=process)
    first = threading.Event()

    def drain() -> None:
        for line in process.stderr:
            server.lines.append(line)
            first.set()
        first.set()

    threading.Thread(target=drain, daemon=True).start()
    if not first.wait(600) or process.poll() is not None:
        process.kill()
        sys.exit(f"musicdb serve did not start: {''.join(server.lines)}")
    found = re.search(r"at (http://\S+:\d+)", server.lines[0])
    if not found:
        sys.exit(f"no address in {server.lines[0]!r}")
    server.url = found[1]
    return server


def auth() -> dict[str, str]:
    salt = secrets.token_hex(8)
    token = hashlib.md5((PASSWORD + salt).encode()).hexdigest()  # Subsonic token auth
    return {"u": USER, "t": token, "s": salt, "v": "1.16.1", "c": "bench", "f": "json"}


# --- the load ------------------------------------------------------------------------------
@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METHODS})
    server: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METHODS})
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(METHODS, 0))
    first_error: str = ""


async def client(url: str, song_ids: np.ndarray, going, tally: Tally, seed: int) -> None:
    """One closed-loop client on one keep-alive connection. aiohttp rather than httpx: the
    clients share the server's 2 cores, and aiohttp costs less CPU per request (measured
    side by side: the `clients` CPU per request line)."""
    import aiohttp

    rng = random.Random(seed)
    base = auth()
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(url, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60)) as http:
        while going():
            method = rng.choice(CHOSEN)
            params = dict(base)
            if method == "search3":
                params["query"] = rng.choice([f"Song {rng.randrange(10**5)}",
                                              f"Artist {rng.randrange(2000):05d}"])
            else:
                params["id"] = f"so-{song_ids[rng.randrange(len(song_ids))]}"
                params["count"] = "20" if method == "getSimilarSongs2" else "10"
            started = time.perf_counter()
            timing = ""
            try:
                async with http.get(f"/rest/{method}", params=params) as response:
                    body = await response.read()
                    timing = response.headers.get("server-timing", "")
                ok = (response.status == 200
                      and json.loads(body)["subsonic-response"]["status"] == "ok")
                why = "" if ok else f"{method}: HTTP {response.status} {body[:200]!r}"
            except (TimeoutError, aiohttp.ClientError, ValueError, KeyError) as exc:
                ok, why = False, f"{method}: {type(exc).__name__} {exc}"
            tally.latencies[method].append(time.perf_counter() - started)
            if ok and (spent := SERVER_TOTAL.search(timing)):
                tally.server[method].append(float(spent[1]) / 1000)
            if not ok:
                tally.errors[method] += 1
                tally.first_error = tally.first_error or why


async def load(server: Server, song_ids: np.ndarray, clients: int, seconds: float,
               beside: threading.Thread | None = None,
               cap: float = float("inf")) -> tuple[Tally, float]:
    """The tally and the seconds it took: `seconds`, or until `beside` ends if later, at most
    `cap`."""
    tally = Tally()
    started = time.perf_counter()
    until, latest = started + seconds, started + max(seconds, cap)

    def going() -> bool:
        now = time.perf_counter()
        return now < until or (beside is not None and beside.is_alive() and now < latest)

    async def watch_rss() -> None:
        while going():
            server.peak_rss_mb = max(server.peak_rss_mb, server.rss_mb())
            await asyncio.sleep(0.5)

    await asyncio.gather(watch_rss(), *(client(server.url, song_ids, going, tally, seed)
                                        for seed in range(clients)))
    return tally, time.perf_counter() - started


def warm_up(server: Server, song_ids: np.ndarray, seconds: float) -> str:
    """Light load until the similar-songs latency settles (the approximate index is built in
    the background at start) or `seconds` pass; returns what was seen."""
    import httpx

    deadline = time.perf_counter() + seconds
    recent: list[float] = []
    # --workers: the start line comes at once, each worker answers once it holds its copy
    with httpx.Client(base_url=server.url, timeout=max(60.0, seconds)) as http:
        while time.perf_counter() < deadline:
            params = auth() | {"id": f"so-{random.choice(song_ids)}", "count": "20"}
            started = time.perf_counter()
            http.get("/rest/getSimilarSongs2", params=params)
            recent = [*recent[-19:], time.perf_counter() - started]
            if len(recent) == 20 and statistics.median(recent) < 0.005:
                break
    return f"warm-up: similar songs median {1000 * statistics.median(recent):.1f} ms"


def rows(phase: str, tally: Tally, seconds: float, rss: float, loadavg: str) -> list[str]:
    out = []
    for method in METHODS:
        runs = sorted(tally.latencies[method])
        if not runs:
            continue
        own = sorted(tally.server[method]) or [float("nan")]
        out.append(f"{phase:14s} {method:22s} {len(runs):8,d} {len(runs) / seconds:8.1f} "
                   f"{1000 * statistics.median(runs):8.1f} {1000 * _p99(runs):8.1f} "
                   f"{1000 * statistics.median(own):8.1f} {1000 * _p99(own):8.1f} "
                   f"{tally.errors[method]:6d} {rss:8.0f}  {loadavg}")
    return out


def _p99(runs: list[float]) -> float:
    return runs[min(len(runs) - 1, int(0.99 * len(runs)))]


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process and its workers (/proc), or of this one (its
    clients)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    total = 0.0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@dataclass
class Cpu:
    """CPU seconds per request of the server and of the clients over one phase."""
    pid: int
    start: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        self.start = (cpu_seconds(self.pid), cpu_seconds())

    def line(self, phase: str, tally: Tally, seconds: float) -> str:
        server, clients = cpu_seconds(self.pid) - self.start[0], cpu_seconds() - self.start[1]
        done = max(1, sum(len(v) for v in tally.latencies.values()))
        return (f"{phase}: CPU per request: server {1000 * server / done:.1f} ms, clients "
                f"{1000 * clients / done:.1f} ms; CPU busy: server {server / seconds:.2f} "
                f"cores, clients {clients / seconds:.2f} cores")


def loadavg() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    # SIGTERM (timeout, kill) runs the finally blocks too: the server and ingest are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=list(SIZES), default="100k")
    ap.add_argument("--seconds", type=float, default=30.0, help="per phase (default 30)")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--workers", type=int, default=1,
                    help="`musicdb serve --workers` (default 1)")
    ap.add_argument("--warmup", type=float, default=120.0,
                    help="at most this long for the server's index to settle (default 120)")
    ap.add_argument("--ingest-songs", type=int, default=24,
                    help="generated 3 s songs the second phase ingests (default 24)")
    ap.add_argument("--ingest-cap", type=float, default=240.0,
                    help="the second phase ends by then even if the ingest has not; the "
                         "ingest is then stopped with SIGINT (default 240 s)")
    ap.add_argument("--methods", default=",".join(METHODS),
                    help="the methods the clients call, comma-separated (default: all three; "
                         "e.g. getSimilarSongs2 alone, to see it without search3's scans)")
    args = ap.parse_args()
    CHOSEN[:] = [m for m in args.methods.split(",") if m in METHODS] or list(METHODS)
    source = library(args.size)
    table: list[str] = []
    with tempfile.TemporaryDirectory(prefix="musicdb-serve-bench-") as tmp:
        work = Path(tmp)
        db = work / "library.duckdb"
        shutil.copy(source, db)
        import duckdb

        with duckdb.connect(str(db), read_only=True) as con:
            song_ids = np.array([r[0] for r in con.execute(
                "SELECT song_id FROM songs WHERE status = 'ok' AND path IS NOT NULL").fetchall()])
        started = time.perf_counter()
        server = start_server(db, work, args.workers)
        print(f"server up in {time.perf_counter() - started:.1f} s: {server.lines[0].strip()}")
        try:
            print(warm_up(server, song_ids, args.warmup))  # inside: a failure stops the server
            before, cpu = loadavg(), Cpu(server.process.pid)
            tally, took = asyncio.run(load(server, song_ids, args.clients, args.seconds))
            table += rows("serving", tally, took, server.peak_rss_mb,
                          f"{before} -> {loadavg()}")
            cpu_lines = [cpu.line("serving", tally, took)]
            print(*table, *cpu_lines, sep="\n", flush=True)  # in case phase two never ends
            first = tally.first_error
            folder = generated_songs(work / "incoming", args.ingest_songs, seed=7)
            server.peak_rss_mb = 0.0
            result: dict[str, object] = {}
            writer_process = subprocess.Popen(ingest_command(folder, db),
                                              stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE, text=True)

            def run_ingest() -> None:
                began = time.perf_counter()
                result["stderr"] = writer_process.communicate()[1]
                result["seconds"] = time.perf_counter() - began

            writer = threading.Thread(target=run_ingest)
            before, cpu = loadavg(), Cpu(server.process.pid)
            writer.start()
            tally, took = asyncio.run(load(server, song_ids, args.clients, args.seconds,
                                           writer, args.ingest_cap))
            table += rows("while ingest", tally, took, server.peak_rss_mb,
                          f"{before} -> {loadavg()}")
            cpu_lines.append(cpu.line("while ingest", tally, took))
            first = first or tally.first_error
            if writer.is_alive():
                print(f"the ingest still ran after {took:.0f} s: stopped with SIGINT")
                writer_process.send_signal(signal.SIGINT)
            writer.join()
        finally:
            code = server.stop()
            if "writer_process" in locals() and writer_process.poll() is None:
                writer_process.kill()
        returncode = writer_process.returncode
        print(f"{args.clients} clients, {args.seconds:.0f} s per phase (the second until the "
              f"ingest ends, at most {args.ingest_cap:.0f} s), {len(song_ids):,} songs; ingest "
              f"of {args.ingest_songs} songs: exit {returncode} in {result['seconds']:.0f} s; "
              f"server exit {code}")
        print(f"{'':14s} {'':22s} {'':8s} {'':8s} {'client-observed':>17s} "
              f"{'server (total)':>17s}")
        print(f"{'phase':14s} {'method':22s} {'requests':>8s} {'req/s':>8s} {'p50 ms':>8s} "
              f"{'p99 ms':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'errors':>6s} {'RSS MB':>8s}  "
              "load average (1/5/15 min)")
        print("\n".join(table))
        print("\n".join(cpu_lines))
        if first:
            print(f"first error: {first}")
        if returncode:
            print(f"ingest: {str(result['stderr'])[-500:]}")
        log = [line.strip() for line in server.lines[1:]
               if "similar songs" in line or "index" in line or "reload" in line]
        if log:
            print("server log:", *log[-6:], sep="\n  ")


if __name__ == "__main__":
    main()
