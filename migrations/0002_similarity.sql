-- Materialised inputs of the similarity views and macros. Write commands (ingest, import)
-- refill them from the *_computed views in sql/30_similarity.sql, so the shell and the CLI
-- read the same numbers and stay fast on large libraries. Latest feature-set versions only.

-- Per feature set: each feature's mean and population std over whole songs (status 'ok').
CREATE TABLE feature_stats (
    feature_set_id INTEGER PRIMARY KEY,
    songs          INTEGER NOT NULL,
    means          DOUBLE[] NOT NULL,
    stds           DOUBLE[] NOT NULL
);

-- Each song's standardised (z-scored) whole-song vector, with what a song result shows, so a
-- nearest-songs query never has to touch the library view.
CREATE TABLE song_vectors (
    feature_set_id INTEGER NOT NULL,
    song_id        INTEGER NOT NULL,
    z              FLOAT[] NOT NULL,
    path           VARCHAR,
    title          VARCHAR,
    artist         VARCHAR,            -- artist tag, else the auto label
    label          VARCHAR,            -- the auto label
    album          VARCHAR,
    name_key       VARCHAR,            -- 'artist - title', lower case, accents stripped
    PRIMARY KEY (feature_set_id, song_id)
);

-- One standardised mean vector per label under each label rule, with the label's spread.
CREATE TABLE artist_centroids (
    feature_set    VARCHAR NOT NULL,
    feature_set_id INTEGER NOT NULL,
    label_from     VARCHAR NOT NULL,   -- the label rule: auto, artist, albumartist, ...
    label          VARCHAR NOT NULL,
    songs          INTEGER NOT NULL,
    centroid       DOUBLE[] NOT NULL,  -- mean z per feature
    spread         DOUBLE[] NOT NULL,  -- population std of z per feature, over the label's songs
    variance       DOUBLE NOT NULL,    -- sum of spread^2: mean squared distance song-to-centroid
    norm2          DOUBLE NOT NULL,    -- sum of centroid^2: distances from one inner product
    PRIMARY KEY (feature_set_id, label_from, label)
);
