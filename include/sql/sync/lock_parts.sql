-- The first statement of a part's save: the parts of one run's category save one at a time, so that
-- each sees the others' counts and saved marks (sync_runs sums the shards; the last part to save
-- saves the considered days). Released when the transaction ends.
SELECT pg_advisory_xact_lock(hashtext('thrive_sync.run_parts'), hashtext(%(run_id)s || ' ' || %(category)s));
