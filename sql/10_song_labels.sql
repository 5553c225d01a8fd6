-- The label of each song under each label rule. `auto` = artist tag, else album artist,
-- else the folder label, else the imported label. Songs without a label under a rule are absent.
CREATE OR REPLACE VIEW song_labels AS
SELECT song_id, rule, label
FROM (
    SELECT song_id, 'artist' AS rule, artist AS label FROM songs
    UNION ALL SELECT song_id, 'albumartist', albumartist FROM songs
    UNION ALL SELECT song_id, 'genre', genre FROM songs
    UNION ALL SELECT song_id, 'folder', folder FROM songs
    UNION ALL SELECT song_id, 'imported', imported_label FROM songs
    UNION ALL SELECT song_id, 'auto', coalesce(artist, albumartist, folder, imported_label)
              FROM songs
)
WHERE label IS NOT NULL;
