-- "What happened to this member / this event": the event ledger's rows (latest outcome per event),
-- by member Id or by account and event id, newest first; each filter is off when NULL.
SELECT account_id, category, event_id, occurred_at, status, reason_code, error_code, attempts,
       first_dag_run_id, last_dag_run_id, last_attempt_at, written_at, custom_member_id
FROM thrive_sync.event_ledger
WHERE (%(member_id)s::text IS NOT NULL OR %(event_id)s::bigint IS NOT NULL)
  AND (%(member_id)s::text IS NULL OR custom_member_id = %(member_id)s)
  AND (%(account_id)s::text IS NULL OR account_id = %(account_id)s)
  AND (%(category)s::text IS NULL OR category = %(category)s)
  AND (%(event_id)s::bigint IS NULL OR event_id = %(event_id)s::bigint)
ORDER BY occurred_at DESC, account_id, category, event_id
LIMIT %(limit)s;
