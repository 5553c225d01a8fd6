-- Map coordinates joined to what each point is: one row per point of every `musicdb map` run.
CREATE OR REPLACE VIEW map_coordinates AS
SELECT p.run_id, r.method, r.unit, r.feature_set, r.label_from, p.song_id, p.snippet,
       f.start_s, f.end_s, p.label, p.x, p.y, l.title, l.artist, l.album, l.path
FROM map_points p
JOIN map_runs r USING (run_id)
JOIN library l USING (song_id)
LEFT JOIN features f
  ON f.song_id = p.song_id AND f.feature_set_id = r.feature_set_id AND f.snippet = p.snippet;
