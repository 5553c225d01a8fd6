-- Musical key and tempo per song and per snippet, from the `tonal` feature set
-- (musicdb.analysis.tonal), which a plain `musicdb ingest` extracts beside default and seed55.
--   SELECT title, key, camelot, tempo_1 FROM song_keys ORDER BY camelot, tempo_1;

-- The 24 keys by the tonal set's key_index: tonic pitch class k % 12 (C = 0), major below 12.
-- Names as DJ software and the Camelot wheel spell them; camelot is the wheel's notation
-- (8B C major, 8A A minor: same number = relative keys, +-1 = a fifth apart).
CREATE OR REPLACE VIEW musical_keys AS
SELECT k::INTEGER AS key_index,
       (k % 12)::INTEGER AS tonic,
       CASE WHEN k < 12 THEN 'major' ELSE 'minor' END AS mode,
       CASE WHEN k < 12
            THEN ['C', 'Db', 'D', 'Eb', 'E', 'F', 'F#', 'G', 'Ab', 'A', 'Bb', 'B'][k % 12 + 1]
            ELSE ['C', 'C#', 'D', 'Eb', 'E', 'F', 'F#', 'G', 'G#', 'A', 'Bb', 'B'][k % 12 + 1]
       END || CASE WHEN k < 12 THEN ' major' ELSE ' minor' END AS key,
       ((7 * (k % 12) + CASE WHEN k < 12 THEN 8 ELSE 5 END + 11) % 12 + 1)::VARCHAR
           || CASE WHEN k < 12 THEN 'B' ELSE 'A' END AS camelot
FROM range(24) t(k);

-- Whether two Camelot keys mix harmonically: the same key, its relative (8A-8B), or a fifth
-- up or down in the same mode (8A-9A, 8A-7A; 12 wraps to 1).
--   SELECT camelot_compatible('8A', '9A'), camelot_compatible('8A', '10A');  -- true, false
CREATE OR REPLACE MACRO camelot_compatible(a, b) AS
a = b
OR left(a, -1) = left(b, -1)
OR (right(a, 1) = right(b, 1)
    AND (TRY_CAST(left(a, -1) AS INTEGER) - TRY_CAST(left(b, -1) AS INTEGER) + 12) % 12 IN (1, 11));

-- The tonal set's values (current version) with each column found by name, not position.
CREATE OR REPLACE VIEW tonal_values AS
WITH tonal AS (
    SELECT n.feature_set_id,
           max(n.position) FILTER (WHERE n.name = 'key_index') AS key_index,
           max(n.position) FILTER (WHERE n.name = 'key_strength') AS key_strength,
           max(n.position) FILTER (WHERE n.name = 'key_confidence') AS key_confidence,
           max(n.position) FILTER (WHERE n.name = 'tempo_1') AS tempo_1,
           max(n.position) FILTER (WHERE n.name = 'tempo_1_confidence') AS tempo_1_confidence,
           max(n.position) FILTER (WHERE n.name = 'tempo_2') AS tempo_2,
           max(n.position) FILTER (WHERE n.name = 'tempo_2_confidence') AS tempo_2_confidence,
           max(n.position) FILTER (WHERE n.name = 'tempo_ratio') AS tempo_ratio,
           max(n.position) FILTER (WHERE n.name = 'tempo_drift') AS tempo_drift,
           max(n.position) FILTER (WHERE n.name = 'tempo_stable') AS tempo_stable
    FROM feature_names n
    JOIN latest_feature_sets l ON l.feature_set_id = n.feature_set_id AND l.feature_set = 'tonal'
    GROUP BY n.feature_set_id
)
SELECT f.song_id, f.snippet, f.start_s, f.end_s,
       f.vals[t.key_index]::INTEGER AS key_index,
       f.vals[t.key_strength] AS key_strength,
       f.vals[t.key_confidence] AS key_confidence,
       f.vals[t.tempo_1] AS tempo_1,
       f.vals[t.tempo_1_confidence] AS tempo_1_confidence,
       f.vals[t.tempo_2] AS tempo_2,
       f.vals[t.tempo_2_confidence] AS tempo_2_confidence,
       f.vals[t.tempo_ratio] AS tempo_ratio,
       f.vals[t.tempo_drift] AS tempo_drift,
       f.vals[t.tempo_stable]::INTEGER AS tempo_stable
FROM features f JOIN tonal t USING (feature_set_id);

-- How tempo_2 relates to tempo_1 (within 3 %): the ambiguity a tempo estimate has. 2:3 reads
-- tempo_2 = 2/3 tempo_1 (a 3-against-2 feel); 3:4 and 4:3 are dotted and triplet feels.
--   SELECT tempo_relation(0.5), tempo_relation(1.5);  -- half, 3:2
CREATE OR REPLACE MACRO tempo_relation(ratio) AS
CASE WHEN ratio IS NULL OR ratio <= 0 THEN NULL
     WHEN abs(ratio / 0.5 - 1) <= 0.03 THEN 'half'
     WHEN abs(ratio / 2.0 - 1) <= 0.03 THEN 'double'
     WHEN abs(ratio / (2.0 / 3) - 1) <= 0.03 THEN '2:3'
     WHEN abs(ratio / 1.5 - 1) <= 0.03 THEN '3:2'
     WHEN abs(ratio / 0.75 - 1) <= 0.03 THEN '3:4'
     WHEN abs(ratio / (4.0 / 3) - 1) <= 0.03 THEN '4:3'
     ELSE 'other' END;

-- A row per song: key ('A minor', NULL without pitch), Camelot ('8A'), tempo candidates.
CREATE OR REPLACE VIEW song_keys AS
SELECT l.song_id, l.label, l.artist, l.album, l.title, l.duration_s, l.path,
       k.key, k.camelot, k.mode, v.key_index, v.key_strength, v.key_confidence,
       v.tempo_1, v.tempo_1_confidence, v.tempo_2, v.tempo_2_confidence, v.tempo_ratio,
       tempo_relation(v.tempo_ratio) AS tempo_relation, v.tempo_drift, v.tempo_stable
FROM tonal_values v
JOIN library l USING (song_id)
LEFT JOIN musical_keys k USING (key_index)
WHERE v.snippet = -1;

-- A row per snippet, the same columns with the snippet's number and bounds (seconds).
CREATE OR REPLACE VIEW snippet_keys AS
SELECT l.song_id, l.label, l.artist, l.album, l.title, v.snippet, v.start_s, v.end_s, l.path,
       k.key, k.camelot, k.mode, v.key_index, v.key_strength, v.key_confidence,
       v.tempo_1, v.tempo_1_confidence, v.tempo_2, v.tempo_2_confidence, v.tempo_ratio,
       tempo_relation(v.tempo_ratio) AS tempo_relation, v.tempo_drift, v.tempo_stable
FROM tonal_values v
JOIN library l USING (song_id)
LEFT JOIN musical_keys k USING (key_index)
WHERE v.snippet >= 0;
