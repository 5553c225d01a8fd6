"""Shared fixtures: a temporary database, the real CLI, generated audio, the duckdb shell."""

from __future__ import annotations

import csv
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from typer.testing import CliRunner

import musicdb.ingest.run
from musicdb.cli import app

REPO = Path(__file__).resolve().parent.parent
# The study's tables (copies of shared/data, so a clean clone tests the same data).
SEED_CSV = REPO / "tests" / "data" / "seed_features_5band.csv"
SEED_CSV_247 = REPO / "tests" / "data" / "seed_features_5and25band.csv.gz"
SHARED: dict[str, Path] = {}  # "folder": shared_folder(), set for the session


@pytest.fixture(scope="session", autouse=True)
def isolated_session(tmp_path_factory: pytest.TempPathFactory):
    """The same for module-scoped fixtures (which are built before `isolated` below)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MUSICDB_DB", raising=False)
        patch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        patch.chdir(tmp_path_factory.mktemp("cwd"))
        patch.setitem(SHARED, "folder", shared_folder(tmp_path_factory))
        yield


@pytest.fixture(autouse=True)
def isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test runs in an empty folder of its own, with its own HOME and no MUSICDB_DB.

    So a test that forgets --db cannot write the developer's ./music.duckdb (or a shared one
    that a parallel test also writes), and nobody's ~/.duckdbrc or environment changes what a
    test sees. The folder is not tmp_path, so a test's own files never count as a stray one.
    """
    home, work = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("cwd")
    monkeypatch.delenv("MUSICDB_DB", raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    yield
    stray = work / "music.duckdb"
    assert not stray.exists(), "the test wrote ./music.duckdb: give the command --db"


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist registers it too; here so a test module can use it under plain pytest
    config.addinivalue_line("markers", "xdist_group(name): run on the same pytest-xdist worker")


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    """Under pytest-xdist (--dist loadgroup) a module whose tests share a module-scoped fixture
    (a study database, a browser, a generated library) runs on one worker, so that fixture is
    built once; every other test goes to whichever worker is free. A test that names its own
    xdist_group keeps it (tests/test_hostile.py: one group per generated library)."""
    if config.getoption("loadgroup", default=False):
        for item in items:
            if not item.get_closest_marker("xdist_group") and shares_a_module_fixture(item):
                item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    yield  # pytest-xdist's own hook marks each grouped test by adding `@group` to its id
    if config.getoption("loadgroup", default=False):
        refuse_ignored_groups(items)
        longest_first(items)


# The work units (an xdist group, or a test of its own) that take longest, longest first, as
# measured with --durations on 2 cores (seconds, roughly). pytest-xdist hands units out in the
# order of their first test: one of these started last would run alone at the end while the
# other worker idles. Every unit not named here keeps its place after them.
LONGEST = (
    "tests/test_concurrency.py",  # ~110 s, real processes meeting an ingest, one worker
    "crash-sigkill",  # ~95 s
    "tests/test_readme.py::test_shell_examples_run_as_written[study]",  # ~33 s
    "tests/test_kernel_cache.py::test_an_ingest_compiles_into_the_user_cache_and_the_next_"
    "process_finds_it",  # ~26 s: compiles every kernel
    "tests/test_readme.py::test_shell_examples_run_as_written[demo]",  # ~21 s
    "tests/test_maps.py",  # ~70 s, one browser
    "tests/test_memory.py::test_peak_memory_of_an_hour_is_that_of_ten_minutes",  # ~47 s
    "tests/test_fuzz.py",  # ~45 s
    "tests/test_trust.py",  # ~36 s
    "crash-sigterm",  # ~30 s
    "crash-workers",  # ~30 s
    "tests/test_experiments.py",
    "tests/test_evaluate.py",
    "tests/test_import.py",
)


def work_unit(item: pytest.Item) -> str:
    """What pytest-xdist's loadgroup keeps together: a named group (a module's name becomes
    its path here), or the test itself."""
    group = item.get_closest_marker("xdist_group")
    if group is None:
        return item.nodeid.partition("@")[0]
    name = group.args[0] if group.args else group.kwargs.get("name", "")
    return f"{name.replace('.', '/')}.py" if name.startswith("tests.") else name


def longest_first(items: list[pytest.Item]) -> None:
    rank = {unit: i for i, unit in enumerate(LONGEST)}
    items.sort(key=lambda item: rank.get(work_unit(item), len(LONGEST)))  # stable: the rest


def shares_a_module_fixture(item: pytest.Item) -> bool:
    fixtures = getattr(item, "_fixtureinfo", None)
    return fixtures is not None and any(
        defs[-1].scope == "module" for defs in fixtures.name2fixturedefs.values())


def refuse_ignored_groups(items: list[pytest.Item]) -> None:
    """Stop rather than run the groups apart: with pytest 9.2 the `@group` has no effect
    (pytest-xdist issue 1386) and every module fixture would be rebuilt on every worker."""
    ignored = [item.nodeid for item in items
               if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if ignored:
        raise pytest.UsageError(f"pytest-xdist's --dist loadgroup has no effect with this "
                                f"pytest (e.g. on {ignored[0]}): pip install -e '.[test]'")


def shared_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base folder every pytest-xdist worker of this run sees (this run's own basetemp)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def build_once(shared: Path, name: str, build: Callable[[Path], None]) -> Path:
    """shared/name, filled by build(folder) once per run: the first worker to take the lock
    builds it, the others wait for it. Its users only read it."""
    folder, done = shared / name, shared / f"{name}.done"
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed half-way
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def built_once(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """built_once(name, build): a folder of generated files that several groups need on
    several workers, written once (build_once)."""
    return partial(build_once, shared_folder(tmp_path_factory))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "music.duckdb"


@pytest.fixture
def run():
    """Invoke the real CLI in-process; asserts the exit code unless told otherwise."""
    runner = CliRunner()

    def invoke(*args: str, code: int | None = 0):
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        if code is not None:
            assert result.exit_code == code, result.output
        return result

    return invoke


def duckdb_shell() -> str:
    """The duckdb command-line shell from the duckdb-cli package, next to this Python."""
    beside = Path(sys.executable).with_name("duckdb")
    found = str(beside) if beside.exists() else shutil.which("duckdb")
    assert found, "the duckdb shell is missing: pip install 'duckdb-cli>=1.5.6,<1.6'"
    return found


@pytest.fixture
def shell():
    """Run SQL in the real duckdb shell (read-only); returns rows as lists of strings (CSV)."""

    def query(db: Path, sql: str) -> list[list[str]]:
        proc = subprocess.run(
            [duckdb_shell(), "-readonly", "-csv", "-noheader", str(db), "-c", sql],
            capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "Error" not in proc.stderr, proc.stderr
        return [row for row in csv.reader(proc.stdout.splitlines()) if row]

    return query


@pytest.fixture
def calls(monkeypatch) -> list[str]:
    """Names of the files analysed: every ingest runs its analyses in this process (the
    in-process executor), through a counting analyse_file."""
    seen: list[str] = []
    real = musicdb.ingest.run.analyse_file

    def counting(path: str, *args, **kwargs):
        seen.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(musicdb.ingest.run, "analyse_file", counting)
    from tests.executors import in_process

    in_process(monkeypatch)  # counted here, not in workers
    return seen


def import_study(folder: Path) -> Path:
    """The study's 2,333 songs (13 labels) imported through the real CLI as `study55`.

    Imported once per run (the modules that start from it test what comes after an import);
    each caller gets its own copy of that file."""
    db = folder / "music.duckdb"
    if "folder" not in SHARED:  # not under pytest's session fixtures
        _import_study_into(folder)
        return db
    imported = build_once(SHARED["folder"], "study55", _import_study_into)
    shutil.copyfile(imported / "music.duckdb", db)
    return db


def _import_study_into(folder: Path) -> None:
    result = CliRunner().invoke(app, ["import", str(SEED_CSV), "--feature-set", "study55",
                                      "--db", str(folder / "music.duckdb")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert not (folder / "music.duckdb.wal").exists()  # so the one file is the whole database
