-- Similarity on standardised features. Raw features mix units (Hz next to ratios), so every
-- feature is z-scored over the library's whole songs first; distances are then in units of
-- standard deviations. The *_computed views define each step; ingest and import copy them into
-- the tables feature_stats, song_vectors and artist_centroids (see migrations/0002).

-- The latest version of each feature set.
-- A set's current version is the one holding the most songs, the newest among equals. So a
-- new version (ingest --n-fft 1024) takes over once it covers the songs the old one has, not
-- while its first ingest runs; and songs that a later plain ingest adds to the version of the
-- default parameters are not hidden behind a newer version that lacks them. (Counting the
-- song rows costs ~3 ms at 1,000,000 songs.)
CREATE OR REPLACE VIEW latest_feature_sets AS
WITH song_rows AS (
    SELECT feature_set_id, count(*) AS songs FROM features WHERE snippet = -1 GROUP BY ALL
)
SELECT s.name AS feature_set,
       arg_max(s.feature_set_id, [coalesce(r.songs, 0), s.version]) AS feature_set_id
FROM feature_sets s LEFT JOIN song_rows r USING (feature_set_id)
GROUP BY s.name;

-- The set similarity uses when none is named: 'default' if present, else the one with most songs.
CREATE OR REPLACE VIEW default_feature_set AS
SELECT l.feature_set, l.feature_set_id
FROM latest_feature_sets l LEFT JOIN feature_stats s USING (feature_set_id)
ORDER BY (l.feature_set = 'default') DESC, coalesce(s.songs, 0) DESC, l.feature_set
LIMIT 1;

CREATE OR REPLACE VIEW feature_stats_computed AS
WITH cells AS (
    SELECT f.feature_set_id, unnest(range(1, len(f.vals) + 1)) AS position,
           unnest(f.vals) AS value
    FROM features f
    JOIN songs s USING (song_id)
    JOIN latest_feature_sets USING (feature_set_id)
    WHERE f.snippet = -1 AND s.status = 'ok'
), per_feature AS (
    SELECT feature_set_id, position, count(*) AS songs,
           avg(value) AS mean, coalesce(stddev_pop(value), 0) AS std
    FROM cells GROUP BY ALL
)
SELECT feature_set_id, max(songs)::INTEGER AS songs,
       list(mean ORDER BY position) AS means, list(std ORDER BY position) AS stds
FROM per_feature GROUP BY feature_set_id;

-- Every feature row (songs: snippet -1, and snippets) standardised with the whole-song
-- statistics; a feature without spread is 0.
CREATE OR REPLACE VIEW feature_vectors AS
SELECT f.feature_set_id, f.song_id, f.snippet, f.start_s, f.end_s,
       list_transform(f.vals, lambda v, i: CASE WHEN st.stds[i] > 0
                                   THEN (v - st.means[i]) / st.stds[i] ELSE 0 END)::FLOAT[] AS z
FROM features f JOIN feature_stats st USING (feature_set_id);

CREATE OR REPLACE VIEW song_vectors_computed AS
SELECT v.feature_set_id, v.song_id, v.z, l.path, l.title, coalesce(l.artist, l.label) AS artist,
       l.label, l.album,
       strip_accents(lower(coalesce(l.artist, l.label) || ' - ' || l.title)) AS name_key
FROM feature_vectors v JOIN library l USING (song_id)
WHERE v.snippet = -1 AND l.status = 'ok';

-- Snippets, standardised like songs, with their song's labels at hand.
CREATE OR REPLACE VIEW snippet_vectors AS
SELECT l.feature_set, v.song_id, v.snippet, v.start_s, v.end_s, v.z
FROM feature_vectors v JOIN latest_feature_sets l USING (feature_set_id)
WHERE v.snippet >= 0;

CREATE OR REPLACE VIEW artist_centroids_computed AS
WITH cells AS (
    SELECT v.feature_set_id, l.rule, l.label, unnest(range(1, len(v.z) + 1)) AS position,
           unnest(v.z) AS z
    FROM song_vectors v JOIN song_labels l USING (song_id)
), per_feature AS (
    SELECT feature_set_id, rule, label, position, count(*) AS songs,
           avg(z) AS mean, coalesce(stddev_pop(z), 0) AS spread
    FROM cells GROUP BY ALL
)
SELECT s.feature_set, p.feature_set_id, p.rule AS label_from, p.label,
       max(p.songs)::INTEGER AS songs,
       list(p.mean ORDER BY p.position) AS centroid,
       list(p.spread ORDER BY p.position) AS spread,
       sum(p.spread * p.spread) AS variance,
       sum(p.mean * p.mean) AS norm2
FROM per_feature p JOIN latest_feature_sets s USING (feature_set_id)
GROUP BY ALL;

-- The ordered pairs of labels under the same rule and set, in the three methods, for chosen
-- labels only: `artists` (a list of labels, NULL = every label) against `others` (NULL =
-- every label). The labels are picked before the pairs are formed, so a query costs what it
-- returns, also when the list comes from a query (the view's filters are applied after):
--   SELECT * FROM artist_distances_for(['TaylorSwift', 'AvrilLavigne'], set_name := 'study55');
--   SELECT * FROM artist_distances_for((SELECT list(label) FROM my_labels),
--                                      others := (SELECT list(label) FROM my_labels));
CREATE OR REPLACE MACRO artist_distances_for(artists, others := NULL, label_rule := NULL,
                                              set_name := NULL) AS TABLE
SELECT a.feature_set, a.label_from, a.label AS artist, b.label AS other,
       a.songs AS artist_songs, b.songs AS other_songs,
       label_distance('centroid', a.centroid, b.centroid, a.variance, b.variance) AS euclidean,
       label_distance('cosine', a.centroid, b.centroid, a.variance, b.variance) AS cosine,
       label_distance('songs', a.centroid, b.centroid, a.variance, b.variance) AS song_rms
FROM (SELECT * FROM artist_centroids
      WHERE (artists IS NULL OR list_contains(artists, label))
        AND (label_rule IS NULL OR label_from = label_rule)
        AND (set_name IS NULL OR feature_set = set_name)) a
JOIN (SELECT * FROM artist_centroids
      WHERE (others IS NULL OR list_contains(others, label))
        AND (label_rule IS NULL OR label_from = label_rule)
        AND (set_name IS NULL OR feature_set = set_name)) b
  ON a.feature_set_id = b.feature_set_id AND a.label_from = b.label_from
 AND a.label <> b.label;

-- Every ordered pair of labels under the same rule and set. Plain filters on its columns
-- (artist = 'X', artist IN ('X', 'Y'), artist_songs >= 20, label_from, feature_set) reach
-- the table before the pairs are formed; for labels chosen by a subquery use
-- artist_distances_for above.
CREATE OR REPLACE VIEW artist_distances AS
SELECT * FROM artist_distances_for(NULL);

-- Nearest labels to one label (matched by label_key: ignoring case and accents). method:
-- 'centroid' (euclidean, the default), 'cosine' or 'songs' (see label_distance). Under the
-- 'auto' rule a name that is no auto label but a label under another rule (a folder label in
-- a library organised by folders) is answered among that rule's labels, taking the rules in
-- the order artist, albumartist, folder, imported, genre (as `musicdb similar` does).
--   SELECT * FROM similar_artists('Taylor Swift', 5);
--   SELECT * FROM similar_artists('TaylorSwift', 5, label_rule := 'imported', set_name := 'study55');
CREATE OR REPLACE MACRO similar_artists(artist_name, k := 10, label_rule := 'auto',
                                         set_name := NULL, method := 'centroid',
                                         min_songs := 1) AS TABLE
WITH target AS (
    SELECT c.* FROM artist_centroids c
    WHERE (c.label_from = label_rule OR label_rule = 'auto')
      AND c.feature_set = coalesce(set_name, (SELECT feature_set FROM default_feature_set))
      AND label_key(c.label) = label_key(artist_name)
    ORDER BY list_position(['auto', 'artist', 'albumartist', 'folder', 'imported', 'genre'],
                           c.label_from), c.label
    LIMIT 1
)
SELECT o.label AS name,
       label_distance(method, t.centroid, o.centroid, t.variance, o.variance) AS distance,
       o.songs
FROM target t, artist_centroids o
-- The set and rule as scalars, not join keys: DuckDB then filters the scan and pairs one row
-- with each label, instead of hashing every label's centroid (3x less CPU at 20,000 labels).
WHERE o.feature_set_id = (SELECT feature_set_id FROM target)
  AND o.label_from = (SELECT label_from FROM target)
  AND o.label <> t.label AND o.songs >= min_songs
ORDER BY distance, name
LIMIT k;

-- Nearest songs to one song: its song_id, its path, or 'Artist - Title' (ignoring case and
-- accents). The song itself, and copies of its file elsewhere (same content), are never
-- returned.
--   SELECT * FROM similar_songs('Click Machine - Click Machine 1', 5);
CREATE OR REPLACE MACRO similar_songs(song, k := 10, set_name := NULL) AS TABLE
WITH fs AS (
    SELECT feature_set_id FROM latest_feature_sets
    WHERE feature_set = coalesce(set_name, (SELECT feature_set FROM default_feature_set))
), target AS (
    SELECT v.song_id, v.z FROM song_vectors v
    WHERE v.feature_set_id = (SELECT feature_set_id FROM fs)
      AND v.song_id = song_in_set(song, (SELECT feature_set_id FROM fs))
), copies AS (
    -- Copies of the song itself (same file content at another path) are not neighbours.
    SELECT b.song_id FROM songs a JOIN songs b ON a.content_hash = b.content_hash
    WHERE a.song_id = (SELECT song_id FROM target)
)
SELECT v.song_id, v.path, v.title, v.artist, v.label, v.album,
       list_distance(t.z, v.z) AS distance
FROM target t, song_vectors v
-- The set as a scalar, not a join key, as in similar_artists: 3-5x faster at 1,000,000 songs.
WHERE v.feature_set_id = (SELECT feature_set_id FROM fs)
  AND v.song_id <> t.song_id
  AND v.song_id NOT IN (SELECT song_id FROM copies)
ORDER BY distance, v.song_id
LIMIT k;
