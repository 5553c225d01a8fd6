-- Songs with their auto label; an untitled file shows its file name without the extension.
CREATE OR REPLACE VIEW library AS
SELECT s.song_id, s.status, s.source,
       coalesce(s.artist, s.albumartist, s.folder, s.imported_label) AS label,
       s.artist, s.albumartist, s.album,
       coalesce(s.title, regexp_extract(s.path, '([^/\\]+?)(\.[^./\\]*)?$', 1)) AS title,
       s.genre, s.track, s.year, s.folder,
       s.duration_s, s.codec, s.sample_rate, s.channels, s.path, s.error
FROM songs s;

-- Each feature set version with its size and how many songs and snippets it covers.
CREATE OR REPLACE VIEW feature_set_summary AS
SELECT fs.name, fs.version, fs.kind, fs.n_features, fs.n_fft, fs.hop_length, fs.sample_rate,
       count(DISTINCT f.song_id) AS songs,
       count(*) FILTER (WHERE f.snippet >= 0) AS snippets,
       fs.created_at
FROM feature_sets fs
LEFT JOIN features f USING (feature_set_id)
GROUP BY ALL
ORDER BY fs.name, fs.version;
