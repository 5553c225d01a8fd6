-- Song maps (`musicdb map`): every run with its parameters, and its 2-D point per song or
-- snippet, so coordinates join to the library in SQL and a map can be redrawn without
-- recomputing (`musicdb map --from-run ID`).

CREATE SEQUENCE map_run_id_seq START 1;

CREATE TABLE map_runs (
    run_id         INTEGER PRIMARY KEY DEFAULT nextval('map_run_id_seq'),
    created_at     TIMESTAMP NOT NULL DEFAULT current_timestamp,
    method         VARCHAR NOT NULL,   -- svd, tsne, umap
    unit           VARCHAR NOT NULL CHECK (unit IN ('song', 'snippet')),
    feature_set_id INTEGER NOT NULL,
    feature_set    VARCHAR NOT NULL,
    label_from     VARCHAR NOT NULL,   -- the label rule the points are grouped by
    color_by       VARCHAR NOT NULL,   -- 'label' or 'album'
    labels         VARCHAR[] NOT NULL, -- the labels drawn
    params         VARCHAR NOT NULL,   -- JSON: perplexity, learning rate, seed, ...
    n_points       INTEGER NOT NULL,
    seconds        DOUBLE NOT NULL     -- wall time of the projection alone
);

-- One row per point of a run: a whole song (snippet = -1) or one snippet.
CREATE TABLE map_points (
    run_id  INTEGER NOT NULL,
    song_id INTEGER NOT NULL,
    snippet INTEGER NOT NULL,
    label   VARCHAR NOT NULL,          -- under the run's label rule
    x       DOUBLE NOT NULL,
    y       DOUBLE NOT NULL,
    PRIMARY KEY (run_id, song_id, snippet)
);
