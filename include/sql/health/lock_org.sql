-- One report at a time judges an org (two runs' reports at once would both alert on the same change);
-- held until the transaction ends.
SELECT pg_advisory_xact_lock(hashtextextended('thrive_sync.org_health ' || %(conn_id)s, 0));
