"""Hostile files and names through the real `musicdb ingest` subprocess (issue 11, point 2).

The cases are grouped into a few libraries, each ingested once with good files beside the bad
ones. Every ingest runs under a deadline and a memory watchdog, so a hang or a blow-up fails
its group rather than stalling the suite or the machine. Each case states what is right for it
(an `ok` song, an error row with a one-line human reason, or no row at all) and why.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import psutil
import pytest
import soundfile as sf

MUSICDB = str(Path(sys.executable).with_name("musicdb"))
FFMPEG = shutil.which("ffmpeg")
RUN_TIMEOUT_S = 300  # a group of ~30 short files takes well under a minute on one core
MEMORY_LIMIT_BYTES = 3 << 30  # the whole process tree; /dev/zero once grew to 14.9 GB
SR = 44100
FULL_S = 20.0  # length of the sources that get truncated

# What a case must leave in `songs`.
OK = "ok"  # a song with features
ERROR = "error"  # an error row with a one-line human reason
NO_ROW = "no row"  # not a file the library holds (a folder, a link into the library)
NOT_OK = "error row or no row"  # not audio that can be read, whether or not it is recorded
CLEAN = "ok or error row"  # both are defensible; either way: one clean row, finite values


# --- generated audio --------------------------------------------------------------------------


def music(seconds: float, *, sr: int = SR, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A few seconds of something song-like: a chord that moves, clicks on a beat, some noise;
    every seed sounds different, so no two files share content."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    root = 110.0 * 2 ** (rng.integers(0, 24) / 12)
    y = sum(0.2 * np.sin(2 * np.pi * root * ratio * t * (1 + 0.01 * np.sin(t)))
            for ratio in (1.0, 1.25, 1.5))
    beat = (np.mod(t, 60.0 / rng.uniform(80, 160)) < 0.01) * rng.uniform(-0.5, 0.5, t.size)
    y = y + beat + 0.02 * rng.standard_normal(t.size)
    out = np.stack([np.roll(y, 37 * c) for c in range(channels)], axis=1)
    return (0.8 * out / np.abs(out).max()).astype(np.float32)


def write_wav(path: Path, y: np.ndarray, *, sr: int = SR, subtype: str = "PCM_16",
              fmt: str = "WAV") -> None:
    with path.open("wb") as f:  # an open file: libsndfile cannot take a non-UTF-8 name
        sf.write(f, y, sr, subtype=subtype, format=fmt)


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-nostdin", "-y", *args], check=True, timeout=120)


def encoded(path: Path, seconds: float, seed: int, codec: str) -> None:
    """`seconds` of music() in a lossy codec, through ffmpeg (with the headers real encoders
    write, e.g. LAME's Xing frame count) or, without ffmpeg, through libsndfile."""
    if FFMPEG:
        source = path.with_name(path.name + ".src.wav")
        write_wav(source, music(seconds, seed=seed))
        ffmpeg("-i", str(source), "-c:a", codec, str(path))
        source.unlink()
    else:
        fmt, subtype = {"libmp3lame": ("MP3", "MPEG_LAYER_III"), "libvorbis": ("OGG", "VORBIS"),
                        "libopus": ("OGG", "OPUS")}[codec]
        write_wav(path, music(seconds, seed=seed, sr=48000), sr=48000, fmt=fmt, subtype=subtype)


def source_for(suffix: str) -> Callable[[Path, float, int], None]:
    if suffix == ".flac":
        return lambda p, s, seed: write_wav(p, music(s, seed=seed), fmt="FLAC")
    codec = {".mp3": "libmp3lame", ".ogg": "libvorbis", ".opus": "libopus"}[suffix]
    return lambda p, s, seed: encoded(p, s, seed, codec)


def truncated(suffix: str, percent: int, seed: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        source_for(suffix)(path, FULL_S, seed)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * percent // 100])
    return make


def good_wav(seed: int, seconds: float = 3.0, **kw) -> Callable[[Path], None]:
    sr = kw.pop("sr", SR)
    channels = kw.pop("channels", 1)
    return lambda p: write_wav(p, music(seconds, sr=sr, channels=channels, seed=seed), sr=sr, **kw)


def samples(y: np.ndarray, subtype: str = "FLOAT", sr: int = SR) -> Callable[[Path], None]:
    return lambda p: write_wav(p, y, sr=sr, subtype=subtype)


def with_bad_samples(seed: int, bad: list[float]) -> np.ndarray:
    """A float song with non-finite samples spread through it."""
    y = music(3.0, seed=seed)[:, 0]
    y[:: len(y) // 50][: len(bad) * 10] = np.resize(np.array(bad, np.float32), 10 * len(bad))
    return y


def random_bytes(seed: int, size: int = 40_000) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(np.random.default_rng(seed).bytes(size))


def jpeg(path: Path) -> None:
    if FFMPEG:
        jpg = path.with_name("cover.jpg")
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64", "-frames:v", "1", str(jpg))
        jpg.rename(path)
    else:  # a JFIF header and random scan data: a damaged cover, still not audio
        path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
                         + np.random.default_rng(5).bytes(3000) + b"\xff\xd9")


def video_only(path: Path) -> None:
    codec = "libvpx" if path.suffix == ".webm" else "mpeg4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=duration=2:size=64x64:rate=10", "-c:v", codec, str(path))


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def no_stream_mp4(path: Path) -> None:
    """An MP4 with a file type and a movie header but no track at all (ffmpeg will not write
    one, so it is assembled box by box)."""
    mvhd = (bytes(4) + struct.pack(">IIII", 0, 0, 1000, 0) + struct.pack(">IH", 0x10000, 0x100)
            + bytes(10) + struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
            + bytes(24) + struct.pack(">I", 1))
    path.write_bytes(box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isommp41")
                     + box(b"moov", box(b"mvhd", mvhd)))


def absurd_header_wav(path: Path) -> None:
    """One second of audio whose RIFF and data sizes claim 4 GB."""
    write_wav(path, music(1.0, seed=31))
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack("<I", 0xFFFFFFF0)
    at = data.find(b"data")
    data[at + 4 : at + 8] = struct.pack("<I", 0xFFFFFF00)
    path.write_bytes(bytes(data))


def corrupt_vorbis_comment(path: Path) -> None:
    """A tagged Ogg Vorbis file whose comment header declares the artist comment 0 bytes long:
    mutagen then reads the comment's text as the next length and raised IndexError."""
    if FFMPEG:
        source = path.with_name("comment-source.wav")
        write_wav(source, music(3.0, seed=41))
        ffmpeg("-i", str(source), "-c:a", "libvorbis", "-metadata", "artist=Someone",
               "-metadata", "title=Broken tags", str(path))
        source.unlink()
    else:
        write_wav(path, music(3.0, seed=41, sr=48000), sr=48000, fmt="OGG", subtype="VORBIS")
        import mutagen

        tags = mutagen.File(path)
        tags["artist"], tags["title"] = "Someone", "Broken tags"
        tags.save()
    data = bytearray(path.read_bytes())
    at = data.find(b"artist=", data.find(b"\x03vorbis"))
    assert at > 0, "the generated Ogg file has no artist comment"
    data[at - 4 : at] = bytes(4)
    path.write_bytes(bytes(data))


def tagged_flac(seed: int, **tags: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        import mutagen.flac

        write_wav(path, music(3.0, seed=seed), fmt="FLAC")
        audio = mutagen.flac.FLAC(path)
        for key, value in tags.items():
            audio[key] = value
        audio.save()
    return make


def text(content: str) -> Callable[[Path], None]:
    return lambda p: p.write_text(content)


def symlink_to(target: str | Path) -> Callable[[Path], None]:
    return lambda p: p.symlink_to(target)


def fifo(path: Path) -> None:
    os.mkfifo(path)


def folder_with(inner: str, make: Callable[[Path], None]) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        path.mkdir()
        make(path / inner)
    return build


def locked_folder(path: Path) -> None:
    path.mkdir()
    good_wav(61)(path / "hidden.wav")
    path.chmod(0)


def unreadable(path: Path) -> None:
    good_wav(62)(path)
    path.chmod(0)


# --- the cases --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str | bytes  # path below the library root
    expect: str
    make: Callable[[Path], None]
    why: str = ""
    ffmpeg: bool = False  # needs ffmpeg to be generated
    needs_unprivileged: bool = False  # only meaningful when the ingest cannot read everything
    rows_under: bool = False  # the expectation is about every row below this path (a folder)

    @property
    def id(self) -> str:
        name = os.fsdecode(self.name) if isinstance(self.name, bytes) else self.name
        return re.sub(r"[^\w.\-\[\]/]", "?", name)[:40]


def truncation_cases() -> list[Case]:
    cases = []
    for seed, suffix in enumerate((".mp3", ".ogg", ".flac", ".opus")):
        lossy = suffix != ".flac"
        for percent in (10, 50):
            cases.append(Case(f"truncated/{percent}pc{suffix}", ERROR,
                              truncated(suffix, percent, 100 + seed),
                              f"{percent} % of the file is left: a truncated download, not a "
                              "shorter song", ffmpeg=lossy and suffix != ".ogg"))
        # Where the header states the exact length (FLAC's sample count, LAME's Xing frame
        # count) a cut at 95 % is truncated too; an Ogg stream only estimates its length from
        # its last page, so 95 % of it may pass as a shorter song.
        exact = suffix in (".mp3", ".flac")
        cases.append(Case(f"truncated/95pc{suffix}", ERROR if exact else CLEAN,
                          truncated(suffix, 95, 100 + seed),
                          "95 % of a file whose header states its exact length" if exact
                          else "95 % of an Ogg stream: a shorter song or truncated",
                          ffmpeg=lossy and suffix != ".ogg"))
    return cases


def content_cases() -> list[Case]:
    silence = np.zeros((3 * SR, 1), np.float32)
    return [
        Case("zero-bytes.mp3", ERROR, lambda p: p.write_bytes(b""), "an empty file"),
        *[Case(f"random{suffix}", ERROR, random_bytes(i), "random bytes, not audio")
          for i, suffix in enumerate((".mp3", ".ogg", ".flac", ".opus", ".wav"))],
        Case("text.mp3", ERROR, text("These are the lyrics, not the song.\n" * 50),
             "a text file named .mp3"),
        Case("cover.mp3", ERROR, jpeg, "cover art named .mp3"),
        Case("video-only.mp4", ERROR, video_only, "no audio stream", ffmpeg=True),
        Case("video-only.webm", ERROR, video_only, "no audio stream", ffmpeg=True),
        Case("no-stream.mp4", ERROR, no_stream_mp4, "a container with no stream at all"),
        Case("no-samples.wav", ERROR, samples(np.zeros((0, 1), np.float32)),
             "a WAV header with no samples"),
        Case("one-sample.wav", ERROR, samples(np.full((1, 1), 0.5, np.float32)),
             "one sample is not a song: not even one analysis frame"),
        Case("ten-ms.wav", CLEAN, samples(music(0.01, seed=7)),
             "10 ms: less than one STFT window; a song of one frame or an error, both clean"),
        Case("silence.wav", ERROR, samples(silence), "silent: README's -120 dBFS rule"),
        Case("dc-offset.wav", OK, samples(np.full((3 * SR, 1), 0.25, np.float32)),
             "a constant 0.25 is above -120 dBFS, so not 'silent' by the README: a song whose "
             "spectrum is one bin; every value must be finite"),
        Case("square.wav", OK,
             samples(np.sign(np.sin(2 * np.pi * 220 * np.arange(3 * SR) / SR))[:, None]
                     .astype(np.float32)), "a full-scale square wave is loud, not broken"),
        Case("nan-samples.wav", CLEAN, samples(with_bad_samples(8, [math.nan])[:, None]),
             "a damaged float WAV: analysed without its NaN samples, or an error row"),
        Case("inf-samples.wav", CLEAN,
             samples(with_bad_samples(9, [math.inf, -math.inf])[:, None]),
             "a damaged float WAV: analysed without its infinite samples, or an error row"),
        Case("all-nan.wav", ERROR, samples(np.full((SR, 1), math.nan, np.float32)),
             "no finite sample: nothing to analyse"),
        Case("absurd-header.wav", CLEAN, absurd_header_wav,
             "a header claiming 4 GB over 1 s of audio: no unbounded allocation"),
        Case("corrupt-comment.ogg", ERROR, corrupt_vorbis_comment,
             "a corrupted Vorbis comment header (mutagen raised IndexError): the issue asks "
             "for an error row"),
        *truncation_cases(),
    ]


def format_cases() -> list[Case]:
    cases = [Case(f"rate-{sr}.wav", OK, good_wav(200 + i, sr=sr), f"{sr} Hz is audio")
             for i, sr in enumerate((8000, 11025, 96000, 192000))]
    cases += [Case(f"channels-{n}.wav", OK, good_wav(210 + n, channels=n), f"{n} channels")
              for n in (1, 2, 6, 8)]
    cases += [Case(f"depth-{subtype}.wav", OK, good_wav(220 + i, subtype=subtype), subtype)
              for i, subtype in enumerate(("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT",
                                           "DOUBLE"))]
    cases += [
        Case("surround-5.1.flac", OK, good_wav(230, channels=6, fmt="FLAC", subtype="PCM_24"),
             "a 5.1 FLAC"),
        Case("hires-96k-24bit.flac", OK, good_wav(231, sr=96000, fmt="FLAC", subtype="PCM_24"),
             "96 kHz / 24-bit FLAC"),
        Case("good.mp3", OK, lambda p: source_for(".mp3")(p, 3.0, 232), "mp3", ffmpeg=True),
        Case("good.ogg", OK, lambda p: source_for(".ogg")(p, 3.0, 233), "Ogg Vorbis"),
        Case("good.opus", OK, lambda p: source_for(".opus")(p, 3.0, 234), "Opus", ffmpeg=True),
        Case("good.m4a", OK, lambda p: encoded(p, 3.0, 235, "aac"), "AAC through ffmpeg",
             ffmpeg=True),
        Case("flac-named.mp3", OK, good_wav(236, fmt="FLAC"),
             "README: a file counts as audio by its content too, whatever its extension"),
        Case("wav-without-extension", OK, good_wav(237), "found by its first bytes"),
        Case("UPPER.WAV", OK, good_wav(238), "extensions match ignoring case"),
    ]
    return cases


def special_cases() -> list[Case]:
    return [
        Case("no-permission.wav", ERROR, unreadable,
             "a file the user cannot read: an error row that says so", needs_unprivileged=True),
        Case("locked-folder", NOT_OK, locked_folder,
             "a folder the user cannot list: nothing in it can be a song",
             needs_unprivileged=True, rows_under=True),
        Case("broken-link.mp3", NOT_OK, symlink_to("does-not-exist.mp3"), "a broken symlink"),
        Case("loop.mp3", NOT_OK, symlink_to("loop.mp3"), "a symlink to itself"),
        Case("loop-folder", NO_ROW, symlink_to("."),
             "a folder link back to the root: every file behind it is already a song",
             rows_under=True),
        Case("x.mp3", NO_ROW, folder_with("inside.wav", good_wav(70)),
             "a folder named .mp3 is a folder", rows_under=False),
        Case("x.mp3/inside.wav", OK, lambda p: None, "a song inside a folder named x.mp3"),
        Case("y.mp3", ERROR, fifo, "a FIFO: opening it would block forever"),
        Case("fifo-without-extension", NOT_OK, fifo,
             "a FIFO is sniffed for audio only if it is a regular file"),
        Case("z.mp3", ERROR, symlink_to("/dev/zero"), "a character device: endless zeros"),
        Case("u.ogg", ERROR, symlink_to("/dev/urandom"), "a character device: endless noise"),
    ]


def name_cases() -> list[Case]:
    long_name = "é" * 123 + ".wav"  # 250 bytes in UTF-8 (the limit is 255)
    assert len(long_name.encode()) == 250
    names = ["quote's \"double\" `back`.wav", "back\\slash\\.wav", "new\nline.wav",
             "emoji 🎵🎸.wav", "rtl \u202eevil.wav", "音楽 ファイル 한국어.wav", long_name,
             "-leading-dash.wav", "--help.wav", "percent %s %d 100%.wav",
             "semicolon'; DROP TABLE songs; --.wav", "[bold]markup[/bold] [/].wav",
             "weird[/y]good.wav"]
    cases = [Case(name, OK, good_wav(300 + i), "a good song with a strange name")
             for i, name in enumerate(names)]
    cases += [
        Case("weird[/y]bad.mp3", ERROR, text("not audio"),
             "a bad file whose path has [/y]: its failure line prints literally"),
        Case("markup-tag.flac", OK, tagged_flac(320, artist="[/red]Closing Tag",
                                                title="[bold]Bold[/bold] [/]"),
             "tags with markup: labels, not instructions"),
        Case(b"caf\xe9.wav", CLEAN, good_wav(321),
             "a Latin-1 name on a UTF-8 system: stored losslessly, or an error row, without "
             "breaking the batch"),
        Case("real/one.wav", OK, good_wav(322), "reached three ways: one song"),
        Case("linked", NO_ROW, symlink_to("real"),
             "a symlinked folder: its files are songs already", rows_under=True),
    ]
    return cases


GROUPS: dict[str, Callable[[], list[Case]]] = {
    "content": content_cases, "formats": format_cases, "special": special_cases,
    "names": name_cases,
}
# Given besides the root, so one file is reached through `..` and through a symlinked folder.
EXTRA_PATHS = {"names": ["real/../real/one.wav", "linked/one.wav", "linked"]}
GOOD_FILES = ("good/first.wav", "good/second.flac")


# --- running the real CLI under a deadline and a memory watchdog -----------------------------


@dataclass
class Run:
    code: int | None
    out: str
    err: str
    problem: str | None = None  # "hung", "memory": the run was stopped from outside
    seconds: float = 0.0
    peak_rss: int = 0

    @property
    def output(self) -> str:
        return self.out + self.err


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # exited meanwhile
            total += p.memory_info().rss
    return total


def run_cli(args: list[str], folder: Path, *, prefix: tuple[str, ...] = (),
            timeout: float = RUN_TIMEOUT_S) -> Run:
    """`musicdb ARGS` in its own session; killed (with every child) on a hang or a blow-up.

    Output goes to files, not pipes: a stray child holding a pipe cannot stall the test.
    """
    out_path, err_path = folder / "stdout.txt", folder / "stderr.txt"
    env = os.environ | {"COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    problem, peak = None, 0
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen([*prefix, MUSICDB, *args], stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            peak = max(peak, tree_rss(watched))
            if peak > MEMORY_LIMIT_BYTES:
                problem = f"memory: the process tree reached {peak / 2**30:.1f} GB"
            elif time.monotonic() - started > timeout:
                problem = f"hung: no exit after {timeout:.0f} s"
            if problem:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
            time.sleep(0.25)
    with_children_gone(proc.pid)
    return Run(proc.returncode, out_path.read_text(errors="replace"),
               err_path.read_text(errors="replace"), problem, time.monotonic() - started, peak)


def with_children_gone(pgid: int) -> None:
    """Kill whatever the run left behind in its session (workers of a killed run)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def unprivileged_prefix(folder: Path) -> tuple[str, ...]:
    """A command prefix that takes away root's power to read any file (CI runs as root), or
    () when there is none: then the unreadable-file cases are skipped."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if not setpriv:
        return ()
    caps = "-dac_override,-dac_read_search"
    prefix = (setpriv, "--bounding-set", caps, "--inh-caps", caps)
    probe = folder / "probe.txt"
    probe.write_text("secret")
    probe.chmod(0)
    try:
        proc = subprocess.run([*prefix, "cat", str(probe)], capture_output=True, timeout=30)
    finally:
        probe.unlink()
    return prefix if proc.returncode != 0 else ()


def can_drop_read_rights(prefix: tuple[str, ...]) -> bool:
    return os.geteuid() != 0 or bool(prefix)


# --- what a run left in the database -----------------------------------------------------------


def song_rows(db: Path) -> list[dict]:
    with duckdb.connect(str(db), read_only=True) as con:
        cur = con.execute("SELECT song_id, path, status, error, sample_rate, channels, "
                          "duration_s, artist, title FROM songs WHERE source = 'scan'")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


NON_FINITE_VALUES = ("SELECT count(*) FROM (SELECT unnest(vals) AS v FROM features) "
                     "WHERE v IS NULL OR isnan(v) OR isinf(v)")


def non_finite_values(db: Path) -> int:
    """Stored feature values that are NaN, infinite or NULL (none is documented)."""
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(NON_FINITE_VALUES).fetchone()[0]


def ok_songs_without_features(db: Path) -> list[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return [r[0] for r in con.execute(
            "SELECT s.path FROM songs s CROSS JOIN feature_sets fs WHERE s.status = 'ok' "
            "AND s.source = 'scan' AND fs.kind = 'extracted' AND NOT EXISTS (SELECT 1 FROM "
            "features f WHERE f.song_id = s.song_id AND f.feature_set_id = fs.feature_set_id "
            "AND f.snippet = -1)").fetchall()]


def reason_problem(reason: str | None) -> str | None:
    """Why an error row's reason is not one human line, or None when it is."""
    if not reason or not reason.strip():
        return "no reason"
    if "\n" in reason or "\r" in reason:
        return "more than one line"
    if "Traceback" in reason:
        return "a traceback"
    if len(reason) > 400:
        return f"{len(reason)} characters"
    if re.match(r"[A-Za-z_.]*(Error|Exception)\b", reason):
        return "a bare Python exception, not a reason"
    return None


@dataclass
class GroupResult:
    root: Path
    db: Path
    run: Run
    cases: list[Case]
    skipped: dict[str, str] = field(default_factory=dict)  # case id -> why not generated
    rows: list[dict] = field(default_factory=list)

    def rows_for(self, case: Case) -> list[dict]:
        path = self.root / os.fsdecode(case.name)
        if case.rows_under:  # as spelled: a link's target may be the root itself
            return [r for r in self.rows if r["path"].startswith(f"{path}{os.sep}")]
        if isinstance(case.name, bytes):  # a name that is not UTF-8: match what was kept
            prefix = case.name.decode(errors="replace").split("\ufffd")[0]
            return [r for r in self.rows if Path(r["path"]).parent == path.parent
                    and Path(r["path"]).name.startswith(prefix)
                    and r["path"].endswith(path.suffix)]
        spelled = {str(path), os.path.realpath(path)}
        return [r for r in self.rows if r["path"] in spelled]


def build_group(name: str, root: Path, db: Path, prefix: tuple[str, ...]) -> GroupResult:
    root.mkdir(parents=True)
    result = GroupResult(root, db, Run(None, "", ""), GROUPS[name]())
    for i, good in enumerate(GOOD_FILES):
        (root / good).parent.mkdir(exist_ok=True)
        (good_wav(900 + i) if good.endswith(".wav")
         else good_wav(900 + i, fmt="FLAC"))(root / good)
    for case in result.cases:
        if case.ffmpeg and not FFMPEG:
            result.skipped[case.id] = "ffmpeg is not on PATH"
            continue
        if case.needs_unprivileged and not can_drop_read_rights(prefix):
            result.skipped[case.id] = ("running as root without setpriv: root reads every "
                                       "file, so no file is unreadable")
            continue
        path = root / os.fsdecode(case.name)  # bytes: surrogate-escaped, written as given
        path.parent.mkdir(parents=True, exist_ok=True)
        case.make(path)
    return result


# The groups ingested together, each in a folder of its own below one library root: one
# `musicdb ingest` process (and its workers' start-up, ~3 CPU s) for two groups. `content`
# has a run of its own: its ~30 failures would take the 20 failure lines the summary prints,
# which test_failed_lines_and_summary_print_markup_literally reads for a `names` file;
# `special` too, as a user who cannot read every file (unprivileged_prefix).
LIBRARIES = {"content": ("content",), "mixed": ("formats", "names"), "special": ("special",)}
LIBRARY_OF = {group: library for library, groups in LIBRARIES.items() for group in groups}


def ingest_library(library: str, folder: Path) -> dict[str, GroupResult]:
    """Each group of `library` built in folder/library/<group>, then one ingest of them all;
    a group's result holds the rows below its own folder."""
    groups = LIBRARIES[library]
    prefix = unprivileged_prefix(folder) if "special" in groups else ()
    root, db = folder / "library", folder / "music.duckdb"
    results = {name: build_group(name, root / name, db, prefix) for name in groups}
    extra = [str(root / name / p) for name in groups for p in EXTRA_PATHS.get(name, [])]
    run = run_cli(["ingest", str(root), *extra, "--db", str(db), "--workers", "2",
                   "--feature-set", "default,seed55"], folder, prefix=prefix)
    rows = song_rows(db) if db.exists() and run.problem is None else []
    for result in results.values():
        result.run = run
        below = (f"{result.root}{os.sep}", f"{os.path.realpath(result.root)}{os.sep}")
        result.rows = [r for r in rows if r["path"].startswith(below)]
    return results


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    done: dict[str, GroupResult] = {}
    broken: dict[str, Exception] = {}  # a library that could not be built fails once, not per case

    def get(name: str) -> GroupResult:
        library = LIBRARY_OF[name]
        if library in broken:
            raise broken[library]
        if name not in done:
            try:
                done.update(ingest_library(library, tmp_path_factory.mktemp(library)))
            except Exception as exc:
                broken[library] = exc
                raise
        return done[name]

    yield get
    for result in done.values():  # give back what the cases locked, so pytest can clean up
        for case in result.cases:
            path = result.root / os.fsdecode(case.name)
            if case.needs_unprivileged and path.exists():
                path.chmod(0o700)


def completed(result: GroupResult) -> None:
    """The run finished by itself; otherwise every case of its group fails with why."""
    assert result.run.problem is None, f"{result.run.problem}\n{result.run.output[-3000:]}"


def built_by_one_worker(name: str) -> pytest.MarkDecorator:
    """Every test of one library's groups on the same pytest-xdist worker, so the library is
    built and ingested once; the three libraries run side by side (see tests/conftest.py)."""
    return pytest.mark.xdist_group(f"hostile-{LIBRARY_OF[name]}")


ALL_CASES = [pytest.param(g, c, id=f"{g}:{c.id}", marks=built_by_one_worker(g))
             for g, make in GROUPS.items() for c in make()]


@pytest.mark.parametrize(("group_name", "case"), ALL_CASES)
def test_case(group, group_name: str, case: Case):
    result = group(group_name)
    if case.id in result.skipped:
        pytest.skip(result.skipped[case.id])
    completed(result)
    rows = result.rows_for(case)
    shown = [(r["path"], r["status"], r["error"]) for r in rows]
    why = f"{case.name!r}: {case.why}; rows {shown}"
    if case.expect == NO_ROW:
        assert rows == [], why
        return
    if case.expect == NOT_OK:
        assert all(r["status"] == "error" for r in rows), why
        assert len(rows) <= 1, why
    else:
        assert len(rows) == 1, why
    for row in rows:
        if case.expect == OK:
            assert row["status"] == "ok", why
        elif case.expect == ERROR:
            assert row["status"] == "error", why
        assert row["status"] in ("ok", "error"), why
        if row["status"] == "error":
            assert reason_problem(row["error"]) is None, f"{reason_problem(row['error'])}: {why}"
        else:
            assert row["duration_s"], why
            assert math.isfinite(row["duration_s"]), why


@pytest.mark.parametrize("group_name", [pytest.param(g, marks=built_by_one_worker(g))
                                        for g in GROUPS])
def test_group_run_is_clean(group, group_name: str):
    """The run exits by itself with 0 (good files were ingested), prints no traceback, keeps
    the good files, and stores no value that is not finite."""
    result = group(group_name)
    completed(result)
    run = result.run
    assert "Traceback" not in run.output, run.output[-5000:]
    assert run.code == 0, run.output[-3000:]
    ok = {r["path"] for r in result.rows if r["status"] == "ok"}
    for good in GOOD_FILES:
        assert str(result.root / good) in ok, run.output[-3000:]
    paths = [r["path"] for r in result.rows]
    assert len(paths) == len(set(paths)), "duplicate paths"
    assert non_finite_values(result.db) == 0
    assert ok_songs_without_features(result.db) == []


@built_by_one_worker("names")
def test_failed_lines_and_summary_print_markup_literally(group):
    result = group("names")
    completed(result)
    assert "weird[/y]bad.mp3" in result.run.output.replace("\n", ""), result.run.output[-3000:]


@built_by_one_worker("names")
def test_one_file_reached_three_ways_is_one_song(group):
    """Through the root, `real/../real/one.wav` and the symlinked folder `linked/`."""
    result = group("names")
    completed(result)
    ones = [r for r in result.rows if Path(r["path"]).name == "one.wav"]
    assert [r["path"] for r in ones] == [str((result.root / "real/one.wav").resolve())]


@built_by_one_worker("formats")
def test_sample_rate_and_channels_are_the_files(group):
    result = group("formats")
    completed(result)
    by_name = {Path(r["path"]).name: r for r in result.rows}
    for sr in (8000, 11025, 96000, 192000):
        assert by_name[f"rate-{sr}.wav"]["sample_rate"] == sr
    for n in (1, 2, 6, 8):
        assert by_name[f"channels-{n}.wav"]["channels"] == n
    assert abs(by_name["rate-192000.wav"]["duration_s"] - 3.0) < 0.05


# The tests below read a database or ingest a few plainly bad files: the real CLI in this
# process (tests/conftest.py `run`) shows the same output and exit code as a process of its
# own, without the ~1 CPU s a `musicdb` process takes to start.


@built_by_one_worker("names")
def test_info_after_markup_tags(group, run):
    """A tag containing [/red] is a label like any other: `musicdb info` shows it literally."""
    result = group("names")
    completed(result)
    output = run("info", "--db", result.db).output  # exit code 0, or it says why
    assert "Traceback" not in output, output
    assert "[/red]Closing Tag" in output, output


def test_only_bad_files_exit_1_with_error_rows(tmp_path, run):
    """README: exit 0 unless files were found and not one could be ingested."""
    root = tmp_path / "library"
    root.mkdir()
    (root / "empty.mp3").write_bytes(b"")
    text("not a song")(root / "text.mp3")
    random_bytes(3)(root / "noise.flac")
    output = run("ingest", root, "--db", tmp_path / "music.duckdb", "--workers", "1",
                 code=1).output
    assert "Traceback" not in output, output
    rows = song_rows(tmp_path / "music.duckdb")
    assert sorted(Path(r["path"]).name for r in rows) == ["empty.mp3", "noise.flac", "text.mp3"]
    for row in rows:
        assert row["status"] == "error"
        assert reason_problem(row["error"]) is None, row["error"]


def test_a_folder_without_audio_exits_0(tmp_path, run):
    root = tmp_path / "library"
    root.mkdir()
    text("notes")(root / "readme.txt")
    output = run("ingest", root, "--db", tmp_path / "music.duckdb", "--workers", "1").output
    assert "Traceback" not in output, output


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_summaries_refuse_values_that_are_not_finite(bad: float):
    """The last guard before the database: frames with a value that is not finite (whatever
    let it through) give the file a one-line error, never a stored NaN, which would turn every
    song's standardised vector into NaN through feature_stats."""
    from musicdb.analysis.features import FRAME_ROWS, ROW
    from musicdb.analysis.summaries import FEATURE_SETS
    from musicdb.errors import NonFiniteValues

    frames = np.random.default_rng(0).random((len(FRAME_ROWS), 300)).astype(np.float32)
    frames[ROW["centroid"], 10] = bad
    frame_sets = [fs for fs in FEATURE_SETS.values() if not fs.from_signal]  # not musicnn
    assert len(frame_sets) >= 3
    for feature_set in frame_sets:
        with pytest.raises(NonFiniteValues) as caught:
            feature_set.summarise(frames)
        assert "(centroid)" in caught.value.reason
        assert reason_problem(caught.value.reason) is None
    frames[ROW["centroid"], 10] = 0.5
    for feature_set in frame_sets:
        assert np.isfinite(feature_set.summarise(frames)).all()
