"""Injection and trust: `musicdb sql` and `--where` confined, names bound, model files refused,
data printed literally. Every attack runs through the real CLI on the study's imported table."""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import musicdb
from tests.conftest import SEED_CSV, import_study

EXPERIMENT = "taylor-vs-avril"
ALLOWED_BY_DUCKDB = "musicdb.duckdb.tmp"  # DuckDB's own spill folder beside a read-only file


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """The study imported, one small model evaluated; copied by `library` for each test."""
    from typer.testing import CliRunner

    from musicdb.cli import app

    folder = tmp_path_factory.mktemp("prepared")
    db = import_study(folder)
    result = CliRunner().invoke(app, ["evaluate", "--experiment", EXPERIMENT, "--model",
                                      "logreg", "--no-prune", "--db", str(db)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return db


@pytest.fixture
def library(prepared: Path, tmp_path: Path) -> Path:
    """A private copy of the prepared database and its models/ folder."""
    shutil.copytree(prepared.parent, tmp_path / "lib")
    return tmp_path / "lib" / prepared.name


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def counts(db: Path) -> dict[str, int]:
    """Rows of the tables an attack would want to change, and how many tables there are."""
    with duckdb.connect(str(db), read_only=True) as con:
        found = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                 for t in ("songs", "features", "experiments", "evaluations", "models")}
        found["tables"] = con.execute("SELECT count(*) FROM duckdb_tables()").fetchone()[0]
    return found


def one_error_line(result) -> str:
    """The CLI's answer to bad input: exit 1 and a single 'Error:' line, no traceback."""
    text = result.output  # stdout and stderr, as a terminal shows them
    lines = [line for line in text.splitlines() if line.strip()]
    assert result.exit_code == 1, text
    assert len(lines) == 1, text
    assert lines[0].startswith("Error: "), text
    assert "Traceback" not in text
    return lines[0]


# --- 1. musicdb sql and --where: read-only and confined -----------------------------------

def attacks(db: Path, outside: Path) -> list[str]:
    other = outside / "other.duckdb"
    return [
        # settings, before or after the lock
        "SET enable_external_access = true", "RESET enable_external_access",
        "SET lock_configuration = false", "RESET lock_configuration",
        "SET allowed_directories = ['/']", "SET GLOBAL threads = 1",
        "PRAGMA enable_profiling", "PRAGMA enable_checkpoint_on_shutdown",
        "PRAGMA force_checkpoint", "CHECKPOINT", "FORCE CHECKPOINT", "VACUUM",
        # other databases, and the library re-attached read-write
        f"ATTACH '{other}' AS o", f"ATTACH '{other}' AS o (READ_ONLY)", "USE memory",
        f"DETACH {db.stem}", f"ATTACH '{db}' AS rw; USE rw; DELETE FROM rw.features",
        # writing files, the database file itself first
        f"COPY songs TO '{db}'", f"COPY songs TO '{outside}/out.csv'",
        f"COPY (SELECT 1) TO '{outside}/out.parquet' (FORMAT parquet)",
        f"EXPORT DATABASE '{outside}/export'",
        # extensions and the network
        "INSTALL httpfs", "LOAD httpfs", "SELECT * FROM read_csv('https://example.com/x.csv')",
        # reading files outside the database
        "SELECT * FROM read_csv('/etc/shadow')", "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_parquet('/etc/passwd')", "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_blob('/etc/hostname')", "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM read_json('/etc/passwd')", "SELECT * FROM sniff_csv('/etc/passwd')",
        f"SELECT * FROM read_text('{other}')",
        # writes (the connection is read-only as well) and statements smuggled after a query
        "CREATE TABLE x (a INT)", "CREATE TEMP TABLE x (a INT)",
        "CREATE TEMP MACRO predict_label(a, b) AS 'x'",
        "INSERT INTO songs (song_id) VALUES (999999)", "DELETE FROM features",
        "SELECT count(*) FROM features; DELETE FROM features",
        "SELECT 1; SELECT 2", "CREATE SECRET s (TYPE s3, KEY_ID 'x', SECRET 'y')",
        # the UDFs: a name that is not a literal cannot load a model mid-query
        f"SELECT predict_label('{EXPERIMENT[:4]}' || '{EXPERIMENT[4:]}', 1)",
    ]


def test_sql_refuses_every_bypass_and_changes_nothing(run, library, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    duckdb.connect(str(outside / "other.duckdb")).execute("CREATE TABLE t AS SELECT 1").close()
    before, bytes_before = counts(library), digest(library)
    other_before = digest(outside / "other.duckdb")
    for query in attacks(library, outside):
        line = one_error_line(run("sql", query, "--db", library, code=None))
        assert digest(library) == bytes_before, query
        assert counts(library) == before, query
        assert "root:" not in line  # nothing of /etc/passwd or /etc/shadow leaks
    assert sorted(p.name for p in outside.iterdir()) == ["other.duckdb"]
    assert digest(outside / "other.duckdb") == other_before


def test_sql_in_a_real_process_cannot_detach_reattach_and_delete(library):
    """The issue's attack, in a fresh `musicdb` process: 2,333 rows before and after."""
    me = Path(sys.executable).with_name("musicdb")
    for query in (f"ATTACH '{library}' AS rw", "DETACH music",
                  f"ATTACH '{library}' AS rw; DETACH music; DELETE FROM rw.features"):
        proc = subprocess.run([str(me), "sql", query, "--db", str(library)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith("Error: ")
        assert len(proc.stderr.splitlines()) == 1
    assert counts(library)["features"] == 2333


def test_sql_still_answers_queries_and_the_udfs_work_confined(run, library):
    bytes_before = digest(library)
    shown = run("sql", "SHOW TABLES", "--csv", "--db", library).output
    assert "songs" in shown
    run("sql", "DESCRIBE songs", "--db", library)
    out = run("sql", f"SELECT predict_label('{EXPERIMENT}', song_id) AS label, count(*) AS n "
              "FROM songs JOIN song_labels USING (song_id) WHERE rule = 'auto' "
              "AND label IN ('TaylorSwift', 'AvrilLavigne') GROUP BY 1 ORDER BY 1",
              "--csv", "--db", library).output.splitlines()
    assert out[0] == "label,n"
    assert [r.split(",")[0] for r in out[1:]] == ["AvrilLavigne",
                                                                        "TaylorSwift"]
    settings = run("sql", "SELECT current_setting('enable_external_access'), "
                   "current_setting('python_enable_replacements'), "
                   "current_setting('autoload_known_extensions'), "
                   "current_setting('lock_configuration')", "--csv", "--db", library).output
    assert settings.splitlines()[1] == "False,False,False,True"
    nulls = run("sql", f"SELECT predict_label('{EXPERIMENT}', NULL) AS a, "
                f"predict_proba('{EXPERIMENT}', 1, NULL) AS b, "
                f"predict_label('{EXPERIMENT}', -5) AS c", "--json", "--db", library).output
    assert nulls.strip() == '[{"a": null, "b": null, "c": null}]'
    # the harmless table function checkpoint() is a SELECT: on a read-only file it writes nothing
    run("sql", "SELECT * FROM checkpoint()", "--db", library)
    assert digest(library) == bytes_before


def test_allow_files_reads_only_under_the_folder(run, library, tmp_path):
    allowed, outside = tmp_path / "allowed", tmp_path / "secret"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "extra.csv").write_text("song_id,mood\n1,calm\n")
    (outside / "secret.csv").write_text("password\nhunter2\n")
    (allowed / "link.csv").symlink_to(outside / "secret.csv")
    (allowed / "up").symlink_to(outside, target_is_directory=True)
    query = f"SELECT mood FROM read_csv('{allowed}/extra.csv')"
    one_error_line(run("sql", query, "--db", library, code=None))  # not without the option
    out = run("sql", query, "--allow-files", allowed, "--csv", "--db", library).output
    assert out.splitlines() == ["mood", "calm"]
    for escape_attempt in (f"SELECT * FROM read_csv('{allowed}/../secret/secret.csv')",
                           f"SELECT * FROM read_csv('{allowed}/link.csv')",
                           f"SELECT * FROM read_csv('{allowed}/up/secret.csv')",
                           f"SELECT * FROM glob('{tmp_path}/*')",
                           f"COPY songs TO '{allowed}/copy.csv'",
                           f"EXPLAIN ANALYZE COPY songs TO '{allowed}/copy.csv'"):
        line = one_error_line(run("sql", escape_attempt, "--allow-files", allowed, "--db",
                                  library, code=None))
        assert "hunter2" not in line
    assert sorted(p.name for p in allowed.iterdir()) == ["extra.csv", "link.csv", "up"]


def test_allow_files_with_a_file_allows_that_file_only(run, library, tmp_path):
    (tmp_path / "one.csv").write_text("a\n1\n")
    (tmp_path / "two.csv").write_text("a\n2\n")
    out = run("sql", f"SELECT a FROM read_csv('{tmp_path}/one.csv')", "--allow-files",
              tmp_path / "one.csv", "--csv", "--db", library).output
    assert out.splitlines() == ["a", "1"]
    one_error_line(run("sql", f"SELECT a FROM read_csv('{tmp_path}/two.csv')", "--allow-files",
                       tmp_path / "one.csv", "--db", library, code=None))


WHERE_ATTACKS = [
    "1=1); DELETE FROM features; --",
    "1=1) OR (1=1",
    "true; ATTACH 'x.duckdb' AS x",
    "song_id IN (SELECT 1 FROM read_csv('/etc/shadow'))",
    "title IN (SELECT content FROM read_text('/etc/passwd'))",
    "song_id IN (SELECT * FROM glob('/etc/*'))",
    "EXISTS (SELECT * FROM read_csv('https://example.com/x.csv'))",
]


@pytest.mark.parametrize("songs", [False, True], ids=["artists", "songs"])
def test_where_is_one_confined_condition(run, library, songs):
    name = "1" if songs else "TaylorSwift"
    extra = ["--songs"] if songs else []
    before, bytes_before = counts(library), digest(library)
    for where in WHERE_ATTACKS:
        line = one_error_line(run("similar", name, *extra, "--where", where, "--db", library,
                                  code=None))
        assert "root:" not in line
        assert counts(library) == before, where
        assert digest(library) == bytes_before, where
    # an ordinary condition still works, comments and all
    ok = run("similar", name, *extra, "--where", "song_id < 500 -- the first ones", "--json",
             "--db", library)
    assert '"results"' in ok.output


# --- 2. every user-supplied name reaches SQL bound -----------------------------------------

# `%` alone would match every label under LIKE, `Taylor%` and `T_ylorSwift` TaylorSwift.
HOSTILE = ["x'; DROP TABLE songs; --", '"', "%", "Taylor%", "T_ylorSwift",
           "T\u0430ylorSwift"]  # U+0430, Cyrillic small a, in place of the Latin one


@pytest.fixture(scope="module")
def shared_library(prepared: Path, tmp_path_factory) -> Path:
    """One copy for every name attack: none of them may change it."""
    folder = tmp_path_factory.mktemp("names")
    shutil.copytree(prepared.parent, folder / "lib")
    lines = SEED_CSV.read_text().splitlines()[:4]  # a small table: the names are the point
    (folder / "lib" / "small.csv").write_text("\n".join(lines) + "\n")
    return folder / "lib" / prepared.name


def name_commands(name: str, db: Path, empty: Path) -> list[list[str]]:
    table = str(db.parent / "small.csv")
    return [
        ["similar", name], ["similar", name, "--songs"],
        ["map", "--labels", name, "--method", "svd", "-o", str(empty.parent / "m.html")],
        ["experiment", "create", name, "--labels", "TaylorSwift,AvrilLavigne"],
        ["experiment", "show", name], ["experiment", "delete", name],
        ["evaluate", "--experiment", name], ["predict", "1", "--experiment", name],
        ["import", table, "--feature-set", name],
        ["import", table, "--feature-set", "other", "--label-column", name],
        ["import", table, "--feature-set", "other", "--title-column", name],
        ["ingest", str(empty), "--feature-set", name, "--workers", "1"],
    ]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_with_one_line(run, shared_library, tmp_path, name):
    empty = tmp_path / "empty"
    empty.mkdir()
    before = counts(shared_library)
    for args in name_commands(name, shared_library, empty):
        one_error_line(run(*args, "--db", shared_library, code=None))
        assert counts(shared_library) == before, args


@pytest.fixture(scope="module")
def unfiltered(shared_library: Path) -> dict[str, str]:
    """`similar` of an artist and of a song on shared_library, excluding nothing: asked once,
    since no attack may change that library (every test checks it is unchanged)."""
    from typer.testing import CliRunner

    from musicdb.cli import app

    def output(*args: str) -> str:
        result = CliRunner().invoke(app, [*args, "--json", "--db", str(shared_library)],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    return {"artist": output("similar", "TaylorSwift"), "song": output("similar", "1", "--songs")}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_as_filters_match_nothing(run, shared_library, unfiltered, name):
    """`%` and `_` are not wildcards: excluding them leaves out nothing; no evaluations match."""
    excluded = run("similar", "TaylorSwift", "--exclude-label", name, "--json", "--db",
                   shared_library).output
    assert excluded == unfiltered["artist"]
    assert run("similar", "1", "--songs", "--exclude-label", name, "--json", "--db",
               shared_library).output == unfiltered["song"]
    listed = run("evaluations", "--experiment", name, "--json", "--db", shared_library).output
    assert listed.strip() == "[]"
    assert counts(shared_library)["songs"] == 2333


def test_hostile_labels_of_an_experiment_are_stored_literally(run, library):
    labels = ["x'; DROP TABLE songs; --", "Taylor%", "T_ylorSwift", '"']
    # Labels are checked when the experiment is created: none of these exists.
    line = one_error_line(run("experiment", "create", "hostile", "--labels", ",".join(labels),
                              "--db", library, code=None))
    assert "no labels " + ", ".join(repr(label) for label in labels) in line
    assert "did you mean 'TaylorSwift'" in line  # neither pattern matched TaylorSwift itself
    assert "no experiment 'hostile'" in run("experiment", "show", "hostile", "--db", library,
                                            code=1).output
    assert counts(library)["songs"] == 2333


# --- 3. model files ----------------------------------------------------------------------

def stored_model(db: Path) -> Path:
    with duckdb.connect(str(db), read_only=True) as con:
        (path,) = con.execute("SELECT path FROM models").fetchone()
    return db.parent / path


def record_sha(db: Path, path: Path) -> None:
    """What an attacker who can write the database too would do: make the hash match."""
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE models SET sha256 = ?", [digest(path)])


def refused_everywhere(run, db: Path) -> list[str]:
    lines = [one_error_line(run("predict", "1", "--experiment", EXPERIMENT, "--db", db,
                                code=None)),
             one_error_line(run("sql", f"SELECT predict_label('{EXPERIMENT}', 1)", "--db", db,
                                code=None))]
    return lines


def flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_bytes_are_refused(run, library):
    flip_bytes(stored_model(library))
    assert all("SHA-256 mismatch" in line for line in refused_everywhere(run, library))
    record_sha(library, stored_model(library))
    assert all("model file" in line for line in refused_everywhere(run, library))


def other_estimator(path: Path, *, trusted: bool) -> None:
    """A skops file of another estimator: a trusted type the evaluation did not store, or a
    type outside the trusted list."""
    import numpy as np
    import skops.io as sio
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), np.array(["AvrilLavigne", "TaylorSwift"] * 10)
    model = DecisionTreeClassifier() if trusted else KNeighborsClassifier(n_neighbors=1)
    sio.dump(Pipeline([("scale", StandardScaler()), ("model", model)]).fit(X, y), path)


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted-type", "untrusted-type"])
def test_a_different_estimator_is_refused(run, library, trusted):
    path = stored_model(library)
    other_estimator(path, trusted=trusted)
    assert all("SHA-256 mismatch" in line for line in refused_everywhere(run, library))
    record_sha(library, path)
    expected = "DecisionTreeClassifier, not the LogisticRegression" if trusted else "untrusted"
    assert all(expected in line for line in refused_everywhere(run, library))


def test_a_pickle_renamed_skops_is_refused_and_never_run(run, library, tmp_path):
    """A hand-written protocol-0 pickle that would create a file if it were ever unpickled."""
    marker = tmp_path / "pwned"
    path = stored_model(library)
    path.write_bytes(f"cos\nsystem\n(S'touch {marker}'\ntR.".encode())
    assert all("SHA-256 mismatch" in line for line in refused_everywhere(run, library))
    record_sha(library, path)
    assert all("not a readable skops file" in line for line in refused_everywhere(run, library))
    assert not marker.exists()


def test_a_model_path_outside_the_models_folder_is_refused(run, library):
    shutil.copy(stored_model(library), library.parent / "elsewhere.skops")
    with duckdb.connect(str(library)) as con:
        con.execute("UPDATE models SET path = '../lib/elsewhere.skops'")
    assert all("points outside" in line for line in refused_everywhere(run, library))


def test_the_package_never_imports_pickle():
    """skops only: no pickle, joblib or cloudpickle anywhere in the installed package."""
    forbidden = re.compile(r"^\s*(import|from)\s+(pickle|cPickle|joblib|cloudpickle|dill)\b"
                           r"|\bpickle\.loads?\(|\bjoblib\b|\bcloudpickle\b", re.M)
    root = Path(musicdb.__file__).parent
    sources = sorted(root.rglob("*.py"))
    assert len(sources) > 20
    found = [f"{p.relative_to(root)}: {m.group(0).strip()}" for p in sources
             for m in forbidden.finditer(p.read_text(encoding="utf-8"))]
    assert found == []


# --- 4. data printed literally -------------------------------------------------------------

MARKUP = ("[/red]", "[bold]Loud[/bold]")


@pytest.fixture(scope="module")
def markup_library(tmp_path_factory) -> Path:
    """The study's table with two labels renamed to rich markup and every feature column's
    name starting with `[i]` (an italic tag that would vanish if it were read as markup)."""
    folder = tmp_path_factory.mktemp("markup")
    with SEED_CSV.open(newline="") as f:
        rows = list(csv.reader(f))
    header, renamed = rows[0], {"TaylorSwift": MARKUP[0], "AvrilLavigne": MARKUP[1]}
    label = header.index("label")
    rows[0] = [c if c in ("label", "file") else f"[i]{c}" for c in header]
    for row in rows[1:]:
        row[label] = renamed.get(row[label], row[label])
    source = folder / "markup.csv"
    with source.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    db = folder / "music.duckdb"
    from typer.testing import CliRunner

    from musicdb.cli import app

    runner = CliRunner()
    for args in (["import", str(source), "--feature-set", "study55"],
                 ["experiment", "create", "markup", "--labels", ",".join(MARKUP),
                  "--feature-set", "study55"],
                 ["evaluate", "--experiment", "markup", "--model", "logreg", "--no-prune"]):
        result = runner.invoke(app, [*args, "--db", str(db)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return db


def test_markup_in_labels_prints_literally(run, markup_library):
    db = markup_library
    outputs = [
        run("similar", MARKUP[0], "--db", db).output,
        run("similar", MARKUP[1], "--explain", "--db", db).output,
        run("evaluate", "--experiment", "markup", "--model", "logreg", "--no-prune", "--db",
            db).output,
        run("predict", "1", "--experiment", "markup", "--db", db).output,
        run("sql", f"SELECT '{MARKUP[0]}' AS \"{MARKUP[1]}\", predict_label('markup', 1) AS p",
            "--db", db).output,
        run("experiment", "show", "markup", "--db", db).output,
    ]
    for text in outputs:
        assert any(m in text for m in MARKUP), text
        assert "\x1b[" not in text
    assert "[i]" in outputs[1]
    assert "[i]" in outputs[2]


def test_markup_in_an_experiment_field_prints_literally(run, markup_library):
    db = markup_library
    # `experiment create` refuses an unknown feature set now: the row is written directly.
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO experiments (name, labels, label_from, feature_set, unit, "
                    "split, test_fraction, seed, model, preset) VALUES ('markup-set', "
                    "['a', 'b'], 'auto', '[/red]', 'song', 'hash', 0.4, 0, 'ensemble', false)")
    listed = run("experiment", "list", "--db", db).output
    assert "[/r" in listed  # the cell is cut to the width; a tag would have crashed it
