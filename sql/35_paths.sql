-- Song paths: n songs from song a to song b (both included) that move smoothly through the
-- standardised feature space of sql/30_similarity.sql. The targets lie evenly on the straight
-- line from a's vector to b's, t_i = z_a + (i - 1) / (n - 1) * (z_b - z_a) for the positions
-- i = 2 .. n - 1; each takes the song nearest its target that is not on the path yet, is no
-- copy of a song on it (the same file content, songs.content_hash) and whose artist (the auto
-- label) is not on it yet; when no such song is left, the nearest unused song of any artist.
-- Ties go to the lower song_id. musicdb.similarity.paths.song_path is the same algorithm in
-- numpy, over the vectors held in memory (tests/test_paths.py checks they agree).
--
-- a and b are found as in similar_songs: a song_id, a path or 'Artist - Title' (ignoring case
-- and accents). An unknown a or b, a = b, or n < 2 gives no rows; a library with fewer songs
-- than n gives a shorter path (every usable song, then b). Columns: position (1 = a), song_id,
-- path, title, artist, label, to_target (the distance from the song to its target point: 0 for
-- a and b) and step (the distance from the song before it; NULL for a).
--   SELECT * FROM song_path('Drone Choir - Song 1', 'Noise Garden - Song 3', n := 8);
--
-- Why it is fast: a song's squared distance to a target splits into its squared distance from
-- the line and the square of how far along the line it lies from the target,
-- |z - t|^2 = perp^2 + |z_b - z_a|^2 (s - f)^2, where s is the song's position along the line
-- (0 at a, 1 at b) and f the target's. One pass over the vectors computes s and perp^2 for
-- every song; each step of the recursion is then scalar arithmetic: a path of 12 takes 0.3-0.7 s
-- at 100,000 songs and 2-4 s at 1,000,000 (measured on a shared 2-core machine).
CREATE OR REPLACE MACRO song_path(a, b, n := 12, set_name := NULL) AS TABLE
WITH RECURSIVE fs AS (
    SELECT feature_set_id FROM latest_feature_sets
    WHERE feature_set = coalesce(set_name, (SELECT feature_set FROM default_feature_set))
), first_song AS (
    SELECT v.song_id, v.z::DOUBLE[] AS z, v.label FROM song_vectors v
    WHERE v.feature_set_id = (SELECT feature_set_id FROM fs)
      AND v.song_id = song_in_set(a, (SELECT feature_set_id FROM fs))
), last_song AS (
    SELECT v.song_id, v.z::DOUBLE[] AS z, v.label FROM song_vectors v
    WHERE v.feature_set_id = (SELECT feature_set_id FROM fs)
      AND v.song_id = song_in_set(b, (SELECT feature_set_id FROM fs))
), line AS (
    SELECT f.song_id AS first_id, l.song_id AS last_id, f.z AS z_first,
           list_transform(l.z, lambda x, j: x - f.z[j]) AS direction,
           list_distance(f.z, l.z) ^ 2 AS length2,
           [f.label, l.label] AS labels,
           (SELECT list(content_hash) FILTER (content_hash IS NOT NULL) FROM songs
            WHERE song_id IN (f.song_id, l.song_id)) AS hashes
    FROM first_song f, last_song l
    WHERE f.song_id <> l.song_id AND n >= 2
), candidates AS MATERIALIZED (
    -- Every other song of the set, with its position along the line and distance from it.
    -- Copies of a and b (their content_hash) are left out here, once.
    SELECT p.song_id, p.label, p.content_hash, p.along,
           greatest(p.from_first2 - p.along * p.along * ln.length2, 0) AS perp2
    FROM (SELECT v.song_id, v.label, s.content_hash,
                 CASE WHEN ln.length2 > 0
                      THEN (list_dot_product(v.z, ln.direction)
                            - list_dot_product(ln.z_first, ln.direction)) / ln.length2
                      ELSE 0 END AS along,
                 list_distance(v.z, ln.z_first) ^ 2 AS from_first2
          FROM (SELECT song_id, label, z::DOUBLE[] AS z FROM song_vectors  -- cast once
                WHERE feature_set_id = (SELECT feature_set_id FROM fs)) v
          JOIN songs s USING (song_id), line ln
          WHERE v.song_id NOT IN (ln.first_id, ln.last_id)
            AND (s.content_hash IS NULL OR NOT list_contains(ln.hashes, s.content_hash))) p,
         line ln
), size AS (
    -- n, or fewer when the library has fewer distinct songs (copies count once).
    SELECT least(n, 2 + (SELECT count(DISTINCT coalesce(content_hash, '#' || song_id))
                         FROM candidates)) AS songs
), steps(position, song_id, used_ids, used_hashes, used_labels) AS (
    SELECT 1, first_id, [first_id, last_id], hashes, labels FROM line
    UNION ALL
    SELECT position + 1, best.song_id, list_append(used_ids, best.song_id),
           CASE WHEN best.content_hash IS NULL THEN used_hashes
                ELSE list_append(used_hashes, best.content_hash) END,
           list_append(used_labels, best.label)
    FROM (SELECT s.position, s.used_ids, s.used_hashes, s.used_labels,
                 -- Lexicographic: an artist not on the path first, then the nearest, then
                 -- the lower song_id; label and hash ride along for the next step.
                 min({'taken': coalesce(list_contains(s.used_labels, c.label), false),
                      'distance2': c.perp2 + (SELECT length2 FROM line)
                                   * (c.along - s.position / ((SELECT songs FROM size) - 1)) ^ 2,
                      'song_id': c.song_id, 'label': c.label,
                      'content_hash': c.content_hash}) AS best
          FROM steps s, candidates c
          WHERE s.position < (SELECT songs FROM size) - 1
            AND NOT list_contains(s.used_ids, c.song_id)
            AND (c.content_hash IS NULL OR NOT list_contains(s.used_hashes, c.content_hash))
          GROUP BY ALL)
), chosen AS (
    SELECT position, song_id FROM steps
    UNION ALL
    SELECT (SELECT max(position) FROM steps) + 1, last_id FROM line
), placed AS (
    SELECT c.position, c.song_id, v.path, v.title, v.artist, v.label,
           v.z::DOUBLE[] AS z, (c.position - 1) / ((SELECT max(position) FROM chosen) - 1) AS f
    FROM chosen c JOIN song_vectors v
      ON v.song_id = c.song_id AND v.feature_set_id = (SELECT feature_set_id FROM fs)
)
SELECT p.position, p.song_id, p.path, p.title, p.artist, p.label,
       CASE WHEN p.position = 1 OR p.position = (SELECT max(position) FROM chosen) THEN 0.0
            ELSE list_distance(p.z, list_transform(ln.z_first,
                                                   lambda x, j: x + p.f * ln.direction[j]))
       END AS to_target,
       list_distance(p.z, lag(p.z) OVER (ORDER BY p.position)) AS step
FROM placed p, line ln
ORDER BY p.position;
