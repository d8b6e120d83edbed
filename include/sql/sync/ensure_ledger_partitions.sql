-- The ledger partitions of the days a run considers (check_accounts, before the extracts read them).
SELECT thrive_sync.ensure_ledger_partitions(%(first_day)s::date, %(last_day)s::date);
