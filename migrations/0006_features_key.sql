-- One row per (song, feature set, snippet): a second row for the same key would be counted
-- twice by every view and macro. Nothing musicdb writes repeats a key, so every row of an
-- existing database stays. (A DELETE of repeated rows cannot go first: DuckDB 1.5 builds the
-- key over the rows the same transaction deleted.) The key also indexes the lookups by song.
ALTER TABLE features ADD PRIMARY KEY (song_id, feature_set_id, snippet);
