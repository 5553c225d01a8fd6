-- Songs, feature sets and feature values. Applied once, in one transaction; never edit after
-- release: add 0002_*.sql instead.

CREATE SEQUENCE song_id_seq START 1;

-- One row per audio file found by a scan, or per song of an imported table (no audio).
CREATE TABLE songs (
    song_id        INTEGER PRIMARY KEY,
    source         VARCHAR NOT NULL CHECK (source IN ('scan', 'import')),
    status         VARCHAR NOT NULL CHECK (status IN ('ok', 'error', 'missing')),
    error          VARCHAR,            -- one-line reason when status = 'error'
    path           VARCHAR,            -- absolute path; NULL for imported songs
    root           VARCHAR,            -- the scanned folder the path was found under
    folder         VARCHAR,            -- first folder level below root (the folder label)
    content_hash   VARCHAR,            -- blake2b-128 of the file's bytes
    size_bytes     BIGINT,
    mtime_ns       BIGINT,
    codec          VARCHAR,
    sample_rate    INTEGER,            -- of the file, before resampling
    channels       INTEGER,
    duration_s     DOUBLE,
    title          VARCHAR,
    artist         VARCHAR,
    albumartist    VARCHAR,
    album          VARCHAR,
    genre          VARCHAR,
    track          INTEGER,
    year           INTEGER,
    imported_label VARCHAR,            -- the label column of an imported table
    imported_from  VARCHAR,            -- file an imported song came from
    added_at       TIMESTAMP NOT NULL DEFAULT current_timestamp,
    updated_at     TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE SEQUENCE feature_set_id_seq START 1;

-- A named, versioned recipe. Any change of parameters is a new version; old values stay.
CREATE TABLE feature_sets (
    feature_set_id  INTEGER PRIMARY KEY,
    name            VARCHAR NOT NULL,
    version         INTEGER NOT NULL,
    kind            VARCHAR NOT NULL CHECK (kind IN ('extracted', 'imported')),
    params          VARCHAR NOT NULL,  -- JSON: sample rate, n_fft, hop, bands, ...
    sample_rate     INTEGER,
    n_fft           INTEGER,
    hop_length      INTEGER,
    n_features      INTEGER NOT NULL,
    librosa_version VARCHAR,
    numpy_version   VARCHAR,
    musicdb_version VARCHAR,
    source          VARCHAR,           -- imported sets: the file they came from
    created_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,
    UNIQUE (name, version)
);

CREATE TABLE feature_names (
    feature_set_id INTEGER NOT NULL,
    position       INTEGER NOT NULL,   -- 1-based, the index into features.vals
    name           VARCHAR NOT NULL,
    description    VARCHAR,
    PRIMARY KEY (feature_set_id, position)
);

-- One row per song (snippet = -1) and per snippet (0, 1, ...) and feature set.
-- Values as one list so list_distance / list_cosine_distance run inside DuckDB.
CREATE TABLE features (
    song_id        INTEGER NOT NULL,
    feature_set_id INTEGER NOT NULL,
    snippet        INTEGER NOT NULL,   -- -1 = whole song
    start_s        DOUBLE NOT NULL,
    end_s          DOUBLE NOT NULL,
    vals           FLOAT[] NOT NULL
);

-- One row per `musicdb ingest` run: what it found and how fast it went.
CREATE SEQUENCE ingest_run_id_seq START 1;
CREATE TABLE ingest_runs (
    run_id       INTEGER PRIMARY KEY DEFAULT nextval('ingest_run_id_seq'),
    started_at   TIMESTAMP NOT NULL,
    roots        VARCHAR[] NOT NULL,
    feature_sets VARCHAR[] NOT NULL,
    n_new        INTEGER NOT NULL,
    n_changed    INTEGER NOT NULL,
    n_unchanged  INTEGER NOT NULL,
    n_moved      INTEGER NOT NULL,
    n_failed     INTEGER NOT NULL,
    n_missing    INTEGER NOT NULL,
    audio_s      DOUBLE NOT NULL,
    wall_s       DOUBLE NOT NULL
);
