-- Whether the similarity tables (0002) lag the data. A write that changes songs or features
-- sets `stale` in its own transaction; store.refresh_similarity clears it in the transaction
-- that refills the tables. A run killed in between leaves it set, and the next writer refreshes.
CREATE TABLE similarity_state (
    stale        BOOLEAN NOT NULL,
    marked_at    TIMESTAMP,
    refreshed_at TIMESTAMP
);

-- One row. A file from before this migration may hold tables stale from a killed refresh,
-- which nothing recorded: when it has features, rebuild them once.
INSERT INTO similarity_state (stale, marked_at)
SELECT EXISTS (SELECT 1 FROM features), current_timestamp;
