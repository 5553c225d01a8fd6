-- Which song a query names: shared by similar_songs (30_similarity.sql) and song_path
-- (35_paths.sql). Not in 00_functions.sql, whose macros also run where song_vectors is absent
-- (the server's in-memory copy).

-- The song a query names among one feature set's vectors (song_vectors): its song_id, its
-- path, or 'Artist - Title' ignoring case and accents, preferred in that order; NULL for none.
-- The one reading of a song query, shared by similar_songs and song_path.
--   SELECT song_in_set('Click Machine - Song 1', (SELECT feature_set_id FROM default_feature_set));
CREATE OR REPLACE MACRO song_in_set(song, set_id) AS (
    SELECT v.song_id FROM song_vectors v
    WHERE v.feature_set_id = set_id
      AND (v.song_id = TRY_CAST(song::VARCHAR AS INTEGER) OR v.path = song::VARCHAR
           OR v.name_key = strip_accents(lower(song::VARCHAR)))
    ORDER BY v.song_id = TRY_CAST(song::VARCHAR AS INTEGER) DESC, v.path = song::VARCHAR DESC,
             v.song_id
    LIMIT 1);
