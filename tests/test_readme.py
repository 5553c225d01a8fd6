"""The README's SQL runs in the real duckdb shell on a file musicdb wrote, with expected numbers;
every `musicdb …` and `duckdb …` line of its shell examples runs as written, on the database the
README says it is for."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from musicdb.audio.synth import FORMATS, demo_library, tone, write_audio
from tests.conftest import REPO, SEED_CSV

STUDY_COUNTS = {
    "AvrilLavigne": 91, "BoardsOfCanada": 214, "Classical": 467, "FooFighters": 99,
    "ImogenHeap": 61, "MichaelJackson": 60, "PinkFloyd": 107, "REM": 111, "TaylorSwift": 95,
    "TheFlashbulb": 560, "TommyEmmanuel": 114, "Xmas": 323, "Zero7": 31,
}


def readme_queries() -> list[str]:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", text, re.S)
    return [s.strip() for block in blocks for s in block.split(";") if s.strip()]


@pytest.fixture(scope="module")
def readme_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from typer.testing import CliRunner

    from musicdb.cli import app

    tmp = tmp_path_factory.mktemp("readme")
    # 31 s: one full 30 s snippet and a tail too short to keep (under half a snippet), as
    # with any longer song below 45 s; the ingests analyse the least audio that shows it.
    demo_library(tmp / "lib", songs_per_artist=2, seconds=31.0)
    db = tmp / "music.duckdb"
    runner = CliRunner()
    for args in (["ingest", str(tmp / "lib"), "--db", str(db), "--workers", "1"],
                 ["ingest", str(tmp / "lib"), "--db", str(db), "--workers", "1",
                  "--feature-set", "musicnn"],
                 ["import", str(SEED_CSV), "--feature-set", "study55", "--db", str(db)]):
        result = runner.invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return db


def _kind(text: str) -> str:
    """features_seed55_v2 -> features_<set>_v<N>: generated views are shown for one set each."""
    text = re.sub(r"_(seed55|study55|default|tonal|musicnn)(?![a-z0-9])", "_<set>", text)
    return re.sub(r"_<set>_v\d+(?!\d)", "_<set>_v<N>", text)


def test_readme_has_sql_for_every_view(shell, readme_db: Path) -> None:
    views = {r[0] for r in shell(readme_db, "SELECT view_name FROM duckdb_views() "
                                            "WHERE NOT internal")}
    assert {"features_seed55_v1", "features_default", "snippets_study55_v1"} <= views
    documented = _kind(" ".join(readme_queries()))
    for view in views:
        assert re.search(rf"(?<![\w<]){re.escape(_kind(view))}(?![\w<])", documented), \
            f"no README example for {view}"


def test_every_readme_query_runs_in_the_shell(shell, readme_db: Path) -> None:
    queries = readme_queries()
    assert len(queries) >= 8
    for sql in queries:
        shell(readme_db, sql)  # asserts exit code 0 and no error


def test_readme_queries_give_the_expected_numbers(shell, readme_db: Path) -> None:
    by_text = {q.split("FROM")[1].split()[0]: q for q in readme_queries() if "FROM" in q}
    rules = {r[0]: (int(r[1]), int(r[2])) for r in shell(readme_db, by_text["song_labels"])}
    assert rules["imported"] == (13, 2333)
    assert rules["folder"] == (4, 8)
    assert rules["artist"] == (4, 8)
    assert rules["auto"] == (17, 2341)

    labels = {r[0]: int(r[1]) for r in shell(readme_db, by_text["features_study55"])}
    assert labels == STUDY_COUNTS

    snippets = shell(readme_db, by_text["snippets_seed55"])
    assert len(snippets) == 8  # 8 songs of 31 s: one 30 s snippet each (the 1 s tail dropped)
    assert {(r[3], r[4]) for r in snippets} == {("0.0", "30.0")}

    sets = {r[0]: r[1:] for r in shell(readme_db, by_text["feature_set_summary"])}
    assert sets["seed55"] == ["1", "extracted", "55", "8", "8"]
    assert sets["study55"] == ["1", "imported", "55", "2333", "0"]

    chosen = next(q for q in readme_queries() if "others := ['Zero7'" in q)
    assert len(shell(readme_db, chosen)) == 6  # 2 artists against 3 others, as the README says
    counted = next(q for q in readme_queries() if "label < 'M'" in q)
    assert shell(readme_db, counted) == [["60"]]  # 5 labels before M, each against 12 others


# --- the shell examples --------------------------------------------------------------------
# Each ```bash block with a `musicdb` or `duckdb` line follows a marker naming where it runs:
#   <!-- readme-test: demo -->   in a folder where `musicdb demo` wrote musicdb-demo/ (the
#                                Quick start ingests its library into ./music.duckdb)
#   <!-- readme-test: study -->  in a folder with the repository's tests/data (the study's
#                                tables), the commands naming --db study.duckdb
# The blocks of one kind run in README order in one folder (a later example may use what an
# earlier one made), with BROWSER=true so `--open` opens nothing. Two kinds of line run as a
# user meets them rather than through `bash -c`:
#   `musicdb user add NAME` (without --password-stdin) asks for a password twice: it runs on a
#       pseudo-terminal, and the test types README_PASSWORD at both prompts;
#   `musicdb serve ...` runs until stopped: it starts with --port 0 added (a free port; 4533
#       may be taken), the test waits for its start line, calls ping as the user added above
#       (and checks the start line the README quotes), sends SIGTERM and expects exit 0.
# A line that cannot run here is listed in the README source with its reason:
#   <!-- readme-test skip: "musicdb evaluate --experiment xmas --cv 5" takes minutes -->
COMMAND = re.compile(r"^(musicdb|duckdb)\b")
BLOCK = re.compile(r"(?:<!-- readme-test: (?P<where>\w+) -->\n)?```bash\n(?P<body>.*?)```",
                   re.S)
SKIP = re.compile(r'<!-- readme-test skip: "(?P<line>[^"]+)" (?P<why>[^>]*\w[^>]*) -->')
CONTEXTS = ("demo", "study")
PROMPTED = re.compile(r"^musicdb user add\b(?!.*--password-stdin)")
SERVER = re.compile(r"^musicdb serve\b")
README_PASSWORD = "correct horse battery"
START_LINE = re.compile(r"^serving .* at http://(?P<host>[^\s/]+):(?P<port>\d+) — ")
WAIT_S = 120  # a generous bound on a loaded machine, not a timing assertion


@dataclass
class Example:
    where: str | None
    line: str
    readme_line: int


def readme_commands() -> list[Example]:
    text = (REPO / "README.md").read_text()
    found = []
    for block in BLOCK.finditer(text):
        first = text.count("\n", 0, block.start("body")) + 1
        body = block["body"].replace("\\\n", " ")  # continuation lines are one command
        for offset, line in enumerate(body.splitlines()):
            if COMMAND.match(line.strip()):
                found.append(Example(block["where"], line.strip(), first + offset))
    return found


def readme_skips() -> dict[str, str]:
    return {m["line"]: m["why"].strip() for m in SKIP.finditer((REPO / "README.md").read_text())}


def is_skipped(example: Example, skips: dict[str, str]) -> bool:
    return any(example.line.startswith(line) for line in skips)


def test_every_shell_example_says_where_it_runs():
    examples = readme_commands()
    assert len(examples) >= 20
    unmarked = [f"README.md:{e.readme_line}: {e.line}" for e in examples
                if e.where not in CONTEXTS]
    assert not unmarked, "mark the block <!-- readme-test: demo|study -->:\n" + "\n".join(
        unmarked)
    # A shell without -readonly holds the write lock: every musicdb command would be shut out.
    writers = [e.line for e in examples if e.line.startswith("duckdb ")
               and e.line.split()[1] != "-readonly"]
    assert not writers, writers


def test_few_examples_are_skipped_each_for_a_reason():
    skips, examples = readme_skips(), readme_commands()
    assert len(skips) <= 5, skips
    for line, why in skips.items():
        assert len(why) > 10, f"say why {line!r} cannot run in the test"
        assert any(e.line.startswith(line) for e in examples), f"no such example: {line!r}"


DEMO_SECONDS = 16.0  # `musicdb demo` writes 40 s songs; 40% as long, the same 16 songs


def demo_folder(tmp: Path) -> Path:
    """What `musicdb demo` leaves (its library: the same 16 songs, artists, albums and tags),
    and the files examples name. The songs are 16 s instead of 40 s: every example runs the
    same way on them (one snippet a song either way: the 10 s tail of a 40 s song is dropped,
    a 16 s song, at least half a 30 s snippet, is kept whole as one), and the ingests,
    musicnn's above all, take 40% as long."""
    demo_library(tmp / "musicdb-demo" / "library", seconds=DEMO_SECONDS)
    return tmp


def study_folder(tmp: Path) -> Path:
    """The repository's tests/data at the path the README gives (examples run in the repo)."""
    tmp.mkdir()
    (tmp / "tests").symlink_to(REPO / "tests", target_is_directory=True)
    return tmp


@dataclass
class Session:
    """What one context's examples share: where they run, and what earlier lines made."""
    folder: Path
    env: dict[str, str]
    users: list[str] = field(default_factory=list)
    start_lines: list[str] = field(default_factory=list)


def run_examples(folder: Path, home: Path, examples: list[Example]) -> tuple[list[str], Session]:
    """Each line as a user types it; returns what failed, and what the session saw."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MUSICDB_") and k != "XDG_CONFIG_HOME"}
    env |= {"HOME": str(home), "BROWSER": "true", "COLUMNS": "120",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}
    session = Session(folder, env)
    failed = []
    for example in examples:
        if PROMPTED.match(example.line):
            problem = run_prompted(example.line, session)
        elif SERVER.match(example.line):
            problem = run_server(example.line, session)
        else:
            problem = run_plain(example.line, session)
        if problem:
            failed.append(f"README.md:{example.readme_line}: {example.line}\n  {problem}")
    return failed, session


def run_plain(line: str, session: Session) -> str | None:
    proc = subprocess.run(["bash", "-c", line], cwd=session.folder, env=session.env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or "Traceback" in proc.stderr or "Error" in proc.stderr:
        return f"exit {proc.returncode}: {proc.stderr.strip()[-600:]}"
    return None


def run_prompted(line: str, session: Session) -> str | None:
    """`musicdb user add NAME` on a pseudo-terminal, the password typed at each prompt."""
    argv = shlex.split(line, comments=True)
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(argv, cwd=session.folder, env=session.env, stdin=terminal,
                            stdout=terminal, stderr=terminal, start_new_session=True)
    os.close(terminal)
    seen = b""
    try:
        for prompt in (b"Password: ", b"Repeat for confirmation: "):
            seen += _read_until(controller, prompt, seen)
            os.write(controller, README_PASSWORD.encode() + b"\n")
        code = proc.wait(timeout=WAIT_S)
        seen += _read_rest(controller)
    except TimeoutError as exc:
        proc.kill()
        proc.wait()
        return f"{exc}; the terminal showed: {seen.decode(errors='replace')[-600:]}"
    finally:
        os.close(controller)
    text = seen.decode(errors="replace")
    if code != 0 or "Traceback" in text or "Error" in text:
        return f"exit {code}: {text.strip()[-600:]}"
    session.users.append(argv[3])
    return None


def _read_until(fd: int, wanted: bytes, before: bytes) -> bytes:
    got = b""
    deadline = time.monotonic() + WAIT_S
    while wanted not in (before + got)[-200:]:
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            raise TimeoutError(f"no prompt {wanted!r} within {WAIT_S} s")
        got += os.read(fd, 4096)
    return got


def _read_rest(fd: int) -> bytes:
    got = b""
    while select.select([fd], [], [], 1.0)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        got += chunk
    return got


def run_server(line: str, session: Session) -> str | None:
    """Start the README's serve line on a free port, ping it as the README's user, stop it."""
    argv = [*shlex.split(line, comments=True), "--port", "0"]
    proc = subprocess.Popen(argv, cwd=session.folder, env=session.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        start = _start_line(proc)
        if start is None:
            proc.kill()
            _, rest = proc.communicate(timeout=WAIT_S)
            return f"no start line; exit {proc.returncode}: {rest.strip()[-600:]}"
        session.start_lines.append(start)
        port = START_LINE.match(start)["port"]
        answer = _ping(port, session.users[0] if session.users else None)
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if answer.get("status") != "ok":
        return f"ping as {session.users[:1]} answered {answer}"
    if proc.returncode != 0 or "musicdb serve: stopped" not in rest or "Traceback" in rest:
        return f"after SIGTERM, exit {proc.returncode}: {rest.strip()[-600:]}"
    return None


def _start_line(proc: subprocess.Popen) -> str | None:
    """The first line on stderr if it is the start line; None if the process ended first."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if select.select([proc.stderr], [], [], 1.0)[0]:
            line = proc.stderr.readline()
            if not line:
                return None
            if START_LINE.match(line):
                return line.rstrip("\n")
        elif proc.poll() is not None:
            return None
    return None


def _ping(port: str, user: str | None) -> dict:
    """ping as the user; a refused connection is retried (the start line is printed when the
    port is bound, a moment before uvicorn listens on it)."""
    query = "v=1.16.1&c=readme-test&f=json"
    if user:
        query += f"&u={user}&p={urllib.parse.quote(README_PASSWORD)}"
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            with no_proxy.open(f"http://127.0.0.1:{port}/rest/ping?{query}",
                               timeout=WAIT_S) as response:
                return json.load(response)["subsonic-response"]
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionRefusedError) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def readme_start_line() -> str:
    """The start line the README quotes for `musicdb serve` (port 4533)."""
    found = re.search(r"starts with one line, `(serving [^`]+)`", (REPO / "README.md").read_text())
    assert found, "the README quotes serve's start line: 'starts with one line, `serving …`'"
    return found[1]


@pytest.mark.slow
@pytest.mark.parametrize("where", CONTEXTS)
def test_shell_examples_run_as_written(where, tmp_path):
    home = tmp_path / "home"
    (home / "Downloads").mkdir(parents=True)
    assert ".mp3" in FORMATS
    write_audio(home / "Downloads" / "new-track.mp3", tone(440.0, 20.0))  # "not in the library"
    folder = (demo_folder if where == "demo" else study_folder)(tmp_path / "work")
    skips = readme_skips()
    examples = [e for e in readme_commands() if e.where == where and not is_skipped(e, skips)]
    assert examples
    failed, session = run_examples(folder, home, examples)
    assert not failed, f"{len(failed)} of {len(examples)} examples failed:\n" + "\n".join(failed)
    if where == "demo":  # the README's serve lines ran, and its start line is what one prints
        assert session.users, session
        assert len(session.start_lines) >= 2, session
        on_4533 = [re.sub(r":\d+\b", ":4533", line) for line in session.start_lines]
        assert readme_start_line() in on_4533, on_4533


def test_info_counts_each_snippet_once(run, readme_db: Path) -> None:
    """As the README's `musicdb info` says: 8 snippets described by four extracted sets (and one
    imported set without snippets) are 8, not 32; the table gives each set's own count."""
    import json

    info = json.loads(run("info", "--db", readme_db, "--json").stdout)
    per_set = {s["feature_set"]: s["snippets"] for s in info["feature_sets"]}
    assert per_set == {"default": 8, "seed55": 8, "study55": 0, "tonal": 8, "musicnn": 8}
    assert info["snippets"] == 8
    assert "snippets: 8 (each once" in run("info", "--db", readme_db).stdout
