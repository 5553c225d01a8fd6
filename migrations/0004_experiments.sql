-- Supervised experiments and their stored evaluations (issue 7). Experiments are data: a row
-- names the labels, the label rule, the feature set, the unit, the split and the model. Each
-- `musicdb evaluate` run adds an evaluation with its per-class metrics, confusion cells and
-- feature importances; trained models live as skops files beside the database (`models`).

CREATE TABLE experiments (
    name          VARCHAR PRIMARY KEY,
    labels        VARCHAR[] NOT NULL,
    label_from    VARCHAR NOT NULL DEFAULT 'auto',
    feature_set   VARCHAR,            -- NULL: the library's default set (default_feature_set)
    unit          VARCHAR NOT NULL DEFAULT 'song' CHECK (unit IN ('song', 'snippet')),
    split         VARCHAR NOT NULL DEFAULT 'hash' CHECK (split IN ('hash', 'album')),
    test_fraction DOUBLE NOT NULL DEFAULT 0.4 CHECK (test_fraction > 0 AND test_fraction < 1),
    seed          INTEGER NOT NULL DEFAULT 0,
    model         VARCHAR NOT NULL DEFAULT 'ensemble',
    preset        BOOLEAN NOT NULL DEFAULT false,
    created_at    TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- The study's sections, each with explicit labels (the folder names of its table).
INSERT INTO experiments (name, labels, preset) VALUES
    ('classical-vs-taylor', ['Classical', 'TaylorSwift'], true),
    ('taylor-vs-avril', ['TaylorSwift', 'AvrilLavigne'], true),
    ('artists', ['AvrilLavigne', 'Classical', 'FooFighters', 'ImogenHeap', 'MichaelJackson',
                 'PinkFloyd', 'REM', 'TaylorSwift', 'TheFlashbulb', 'TommyEmmanuel', 'Zero7'], true),
    ('with-boc', ['AvrilLavigne', 'Classical', 'FooFighters', 'ImogenHeap', 'MichaelJackson',
                  'PinkFloyd', 'REM', 'TaylorSwift', 'TheFlashbulb', 'TommyEmmanuel', 'Zero7',
                  'BoardsOfCanada'], true),
    ('xmas', ['AvrilLavigne', 'Classical', 'FooFighters', 'ImogenHeap', 'MichaelJackson',
              'PinkFloyd', 'REM', 'TaylorSwift', 'TheFlashbulb', 'TommyEmmanuel', 'Zero7',
              'BoardsOfCanada', 'Xmas'], true);

CREATE SEQUENCE evaluation_id_seq START 1;

-- One row per `musicdb evaluate` run. With cv > 0 the metrics are fold means and *_std their
-- standard deviations; cv = 0 is the experiment's train/test split (std NULL).
CREATE TABLE evaluations (
    evaluation_id          INTEGER PRIMARY KEY,
    experiment             VARCHAR NOT NULL,
    feature_set            VARCHAR NOT NULL,
    feature_set_id         INTEGER NOT NULL,
    label_from             VARCHAR NOT NULL,
    unit                   VARCHAR NOT NULL,
    split                  VARCHAR NOT NULL,
    model                  VARCHAR NOT NULL,
    cv                     INTEGER NOT NULL,
    seed                   INTEGER NOT NULL,
    prune                  BOOLEAN NOT NULL,
    test_fraction          DOUBLE,
    n_songs                INTEGER NOT NULL,   -- songs of the experiment with features
    n_rows                 INTEGER NOT NULL,   -- training rows: songs, or snippets
    n_test                 INTEGER NOT NULL,   -- songs scored (all of them under CV)
    n_features             INTEGER NOT NULL,
    n_kept                 INTEGER NOT NULL,
    accuracy               DOUBLE NOT NULL,
    accuracy_std           DOUBLE,
    balanced_accuracy      DOUBLE NOT NULL,
    balanced_accuracy_std  DOUBLE,
    macro_f1               DOUBLE NOT NULL,
    macro_f1_std           DOUBLE,
    log_loss               DOUBLE NOT NULL,
    log_loss_std           DOUBLE,
    kept_features          VARCHAR[] NOT NULL,
    params                 VARCHAR NOT NULL,   -- JSON: the model's parameters
    versions               VARCHAR NOT NULL,   -- JSON: musicdb, scikit-learn, numpy, ...
    data_fingerprint       VARCHAR NOT NULL,   -- sha256 of song ids, labels and values
    wall_s                 DOUBLE NOT NULL,
    album_effect           VARCHAR,            -- JSON: scores with whole albums per fold and
                                               -- the inflation; NULL when not measured
    created_at             TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Per class, from the pooled out-of-fold (or test-split) predictions.
CREATE TABLE evaluation_classes (
    evaluation_id INTEGER NOT NULL,
    label         VARCHAR NOT NULL,
    "precision"   DOUBLE NOT NULL,
    recall        DOUBLE NOT NULL,
    f1            DOUBLE NOT NULL,
    support       INTEGER NOT NULL,
    PRIMARY KEY (evaluation_id, label)
);

CREATE TABLE evaluation_confusion (
    evaluation_id   INTEGER NOT NULL,
    true_label      VARCHAR NOT NULL,
    predicted_label VARCHAR NOT NULL,
    songs           INTEGER NOT NULL,
    PRIMARY KEY (evaluation_id, true_label, predicted_label)
);

-- Random-forest importance of every feature (mean over folds) and whether pruning kept it.
CREATE TABLE evaluation_importances (
    evaluation_id INTEGER NOT NULL,
    feature       VARCHAR NOT NULL,
    importance    DOUBLE NOT NULL,
    rank          INTEGER NOT NULL,
    kept          BOOLEAN NOT NULL,
    PRIMARY KEY (evaluation_id, feature)
);

-- Trained models: skops files in models/ beside the database, never inside it.
CREATE TABLE models (
    evaluation_id INTEGER PRIMARY KEY,
    experiment    VARCHAR NOT NULL,
    path          VARCHAR NOT NULL,    -- relative to the database's folder
    sha256        VARCHAR NOT NULL,
    size_bytes    BIGINT NOT NULL,
    labels        VARCHAR[] NOT NULL,  -- the classes, in the model's order
    positions     INTEGER[] NOT NULL,  -- 1-based positions into features.vals the model reads
    created_at    TIMESTAMP NOT NULL DEFAULT current_timestamp
);
