-- Scalar functions the views, the macros and musicdb's own queries share: one definition
-- each. Only CREATE OR REPLACE MACRO statements, one per function (musicdb.similarity.functions
-- also creates them as TEMP macros on a read-only connection, for a database whose views an
-- older musicdb wrote).

-- How musicdb compares names a user types with stored labels: ignoring case and accents, and
-- with 'ß' as 'ss' (so `strasse` finds `Straße`). The one normaliser: the CLI matches through
-- this macro too, so the shell and the commands agree.
--   SELECT label_key('Straße') = label_key('STRASSE');  -- true
CREATE OR REPLACE MACRO label_key(name) AS replace(strip_accents(lower(name)), 'ß', 'ss');

-- The distance between two labels, the one formula behind artist_distances, similar_artists
-- and the heatmap. method: 'centroid' (euclidean between the centroids), 'cosine' (1 when a
-- centroid is all zeros), or 'songs': the root-mean-square distance between the two labels'
-- songs, sqrt(|centroid_a - centroid_b|^2 + variance_a + variance_b): spread-aware, since an
-- artist is a cloud of songs, not a point.
CREATE OR REPLACE MACRO label_distance(method, a, b, a_variance, b_variance) AS
CASE method
    WHEN 'cosine' THEN CASE WHEN list_dot_product(a, a) * list_dot_product(b, b) > 0
                            THEN list_cosine_distance(a, b) ELSE 1 END
    WHEN 'songs' THEN sqrt(list_distance(a, b) ^ 2 + a_variance + b_variance)
    ELSE list_distance(a, b)
END;
