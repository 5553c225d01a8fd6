-- How musicdb compares names a user types with stored labels: ignoring case and accents, and
-- with 'ß' as 'ss' (so `strasse` finds `Straße`). The one normaliser: the CLI matches through
-- this macro too, so the shell and the commands agree.
--   SELECT label_key('Straße') = label_key('STRASSE');  -- true
CREATE OR REPLACE MACRO label_key(name) AS replace(strip_accents(lower(name)), 'ß', 'ss');

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
