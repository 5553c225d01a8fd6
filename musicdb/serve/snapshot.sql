-- The tables `musicdb serve` answers from: an in-memory copy of what the Subsonic API and the
-- explorer show, built from the database attached read-only as `src` (snapshot.py runs this
-- file, then detaches `src`). IDs are computed here, so they are stable across restarts:
--   song    'so-' || song_id
--   artist  'ar-' || 16 hex of sha256(label_key(artist name))
--   album   'al-' || 16 hex of sha256(label_key(album artist) || '\x1f' || label_key(album))
-- Names are compared as label_key compares them (case and accents ignored), so 'ABBA' and
-- 'Abba' are one artist. Only songs with status 'ok' and a file are tracks.

-- One row per playable song. artist: the artist tag, else the auto label (as `musicdb similar`
-- shows it), else '[Unknown Artist]' (an untagged file right in a root has no folder label);
-- albumartist groups albums (the album artist tag, else the artist); songs without an album
-- tag are on '[Unknown Album]' under that artist.
CREATE OR REPLACE TABLE tracks AS
WITH base AS (
    SELECT l.song_id, l.title, coalesce(l.artist, l.label, '[Unknown Artist]') AS artist,
           l.label, coalesce(l.albumartist, l.artist, l.label, '[Unknown Artist]') AS albumartist,
           coalesce(nullif(trim(l.album), ''), '[Unknown Album]') AS album,
           l.track, l.year, l.genre, l.duration_s, l.sample_rate, l.channels, l.codec,
           l.path, l.folder, s.root, s.size_bytes, s.content_hash, s.added_at,
           lower(regexp_extract(l.path, '\.([^./\\]+)$', 1)) AS suffix
    FROM src.library l JOIN src.songs s USING (song_id)
    WHERE l.status = 'ok' AND l.path IS NOT NULL
)
SELECT song_id, 'so-' || song_id AS id, title, artist,
       'ar-' || left(sha256(src.label_key(artist)), 16) AS artist_id,
       album,
       'al-' || left(sha256(src.label_key(albumartist) || chr(31) || src.label_key(album)), 16)
           AS album_id,
       albumartist,
       'ar-' || left(sha256(src.label_key(albumartist)), 16) AS albumartist_id,
       label, track, year, genre,
       round(coalesce(duration_s, 0))::INTEGER AS duration,
       size_bytes::BIGINT AS size, suffix,
       CASE suffix
           WHEN 'mp3' THEN 'audio/mpeg' WHEN 'flac' THEN 'audio/flac'
           WHEN 'ogg' THEN 'audio/ogg' WHEN 'oga' THEN 'audio/ogg' WHEN 'opus' THEN 'audio/ogg'
           WHEN 'wav' THEN 'audio/wav' WHEN 'aif' THEN 'audio/aiff' WHEN 'aiff' THEN 'audio/aiff'
           WHEN 'm4a' THEN 'audio/mp4' WHEN 'mp4' THEN 'audio/mp4' WHEN 'aac' THEN 'audio/aac'
           WHEN 'wma' THEN 'audio/x-ms-wma' WHEN 'wv' THEN 'audio/x-wavpack'
           WHEN 'ape' THEN 'audio/x-ape'
           ELSE 'application/octet-stream'
       END AS content_type,
       -- The file's average bit rate: musicdb stores no codec bit rate.
       CASE WHEN duration_s > 0 THEN round(size_bytes * 8 / 1000 / duration_s)::INTEGER END
           AS bitrate,
       sample_rate, channels, codec, path, root,
       -- The path as the Subsonic `path` field shows it: relative to its library root (a
       -- file a symlink led outside the root shows its name only).
       CASE WHEN starts_with(path, rtrim(root, '/') || '/')
            THEN substr(path, length(rtrim(root, '/')) + 2)
            ELSE regexp_extract(path, '([^/\\]+)$', 1) END AS relpath,
       strftime(added_at, '%Y-%m-%dT%H:%M:%SZ') AS created,
       content_hash, folder,
       src.label_key(title) AS title_key, src.label_key(artist) AS artist_key,
       src.label_key(album) AS album_key,
       -- What search3 matches every word of the query against.
       src.label_key(concat_ws(' ', title, artist, album, albumartist)) AS search_key,
       -- search3's order (title, artist), as a number: a top-n over it costs a scan, not a sort.
       row_number() OVER (ORDER BY src.label_key(title), src.label_key(artist), song_id)
           ::INTEGER AS search_rank
FROM base
ORDER BY search_rank;

-- Songs are fetched by id for every similar-songs answer: point lookups, not scans.
CREATE UNIQUE INDEX tracks_song_id ON tracks (song_id);
CREATE UNIQUE INDEX tracks_id ON tracks (id);

-- One music folder per library root, numbered in root order as getMusicFolders numbers
-- Snapshot.roots (every root songs name, also one whose songs are all missing now).
CREATE OR REPLACE TABLE music_folders AS
SELECT row_number() OVER (ORDER BY root)::INTEGER AS id, root,
       coalesce(nullif(regexp_extract(rtrim(root, '/'), '([^/\\]+)$', 1), ''), root) AS name
FROM (SELECT DISTINCT root FROM src.songs WHERE root IS NOT NULL);

-- Albums: grouped by album artist and album name. cover_id: the song whose file is asked for
-- embedded art first (the album's first track).
CREATE OR REPLACE TABLE albums AS
SELECT album_id, min(album) AS name, min(albumartist) AS artist,
       min(albumartist_id) AS artist_id, count(*)::INTEGER AS song_count,
       sum(duration)::INTEGER AS duration, max(year) AS year, mode(genre) AS genre,
       min(created) AS created,
       arg_min(id, [coalesce(track, 100000), song_id]) AS cover_id,
       min(album_key) AS name_key
FROM tracks
GROUP BY album_id;

-- Artists: every album artist and every track artist. album_count counts the albums they are
-- the album artist of, song_count the songs they are the artist of.
CREATE OR REPLACE TABLE artists AS
WITH names AS (
    SELECT artist_id, min(name) AS name
    FROM (SELECT artist_id, artist AS name FROM tracks
          UNION ALL SELECT albumartist_id, albumartist FROM tracks)
    GROUP BY artist_id
), album_counts AS (
    SELECT artist_id, count(*) AS albums FROM albums GROUP BY artist_id
), song_counts AS (
    SELECT artist_id, count(*) AS songs FROM tracks GROUP BY artist_id
)
SELECT n.artist_id, n.name, coalesce(a.albums, 0)::INTEGER AS album_count,
       coalesce(s.songs, 0)::INTEGER AS song_count, src.label_key(n.name) AS name_key
FROM names n
LEFT JOIN album_counts a USING (artist_id)
LEFT JOIN song_counts s USING (artist_id);

-- The artists' centroids of the default feature set under the auto label rule, the centroids
-- `musicdb similar ARTIST` ranks by (a track's artist is its auto label, so artist_id joins).
CREATE OR REPLACE TABLE centroids AS
SELECT 'ar-' || left(sha256(src.label_key(c.label)), 16) AS artist_id, c.label, c.songs,
       c.centroid, c.variance
FROM src.artist_centroids c
WHERE c.label_from = 'auto'
  AND c.feature_set = (SELECT feature_set FROM src.default_feature_set);

-- The stored maps, for the explorer.
CREATE OR REPLACE TABLE map_runs AS SELECT * FROM src.map_runs;
CREATE OR REPLACE TABLE map_points AS SELECT * FROM src.map_points;
