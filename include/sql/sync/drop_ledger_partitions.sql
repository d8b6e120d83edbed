-- Retention: the ledger's days before before_day go, a partition each.
SELECT thrive_sync.drop_ledger_partitions(%(before_day)s::date);
