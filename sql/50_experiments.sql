-- Experiments (issue 7). Pure SQL: the shell sees the same splits musicdb trains on.

-- Each song of each experiment (status ok, labelled under the experiment's rule with one of
-- its labels) and its side of the train/test split. The side is a hash of the split group and
-- the experiment's seed: a song's identity (content hash, or label/title for imported songs),
-- or with split = 'album' its album, so a whole album stays on one side. Snippets follow their
-- song because they are joined by song_id. Stable across runs and machines (md5).
CREATE OR REPLACE VIEW splits AS
WITH members AS (
    SELECT e.name AS experiment, e.seed, e.test_fraction, e.split, s.song_id, l.label,
           coalesce(s.content_hash, s.imported_label || '/' || s.title,
                    s.song_id::VARCHAR) AS identity,
           CASE WHEN s.album IS NOT NULL
                THEN coalesce(s.albumartist, s.artist, s.folder, s.imported_label, '')
                     || '/' || s.album END AS album_key
    FROM experiments e
    JOIN song_labels l ON l.rule = e.label_from AND list_contains(e.labels, l.label)
    JOIN songs s ON s.song_id = l.song_id AND s.status = 'ok'
), grouped AS (
    SELECT *, CASE WHEN split = 'album' THEN coalesce('album:' || album_key, 'song:' || identity)
                   ELSE 'song:' || identity END AS split_group
    FROM members
)
SELECT experiment, song_id, label, split_group,
       coalesce('album:' || album_key, 'song:' || identity) AS album_group,
       CASE WHEN (md5_number(split_group || '#' || seed::VARCHAR) % 1000000)::DOUBLE / 1e6
                 < test_fraction THEN 'test' ELSE 'train' END AS side
FROM grouped;

-- Every stored evaluation side by side: metrics with their fold spread, and the change in
-- accuracy and macro-F1 against the experiment's previous evaluation.
CREATE OR REPLACE VIEW evaluation_comparison AS
SELECT e.evaluation_id, e.experiment, e.feature_set, e.model, e.unit, e.split, e.cv, e.prune,
       e.seed, e.n_songs, e.n_features, e.n_kept,
       e.accuracy, e.accuracy_std, e.balanced_accuracy, e.macro_f1, e.macro_f1_std, e.log_loss,
       e.accuracy - lag(e.accuracy) OVER w AS accuracy_change,
       e.macro_f1 - lag(e.macro_f1) OVER w AS macro_f1_change,
       rank() OVER (PARTITION BY e.experiment, e.feature_set ORDER BY e.macro_f1 DESC)
           AS rank_in_experiment,
       (e.album_effect::JSON ->> 'accuracy_inflation')::DOUBLE AS album_inflation,
       m.path AS model_path, e.wall_s, e.created_at
FROM evaluations e LEFT JOIN models m USING (evaluation_id)
WINDOW w AS (PARTITION BY e.experiment ORDER BY e.evaluation_id);
