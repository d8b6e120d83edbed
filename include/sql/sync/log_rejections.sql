-- Record rows the org rejected (or that ran out of retries) in the tracking log, with their source
-- values from the staging table: the writer knows only their keys. The event_id filter lets the
-- primary key find the few rows instead of hashing the run's whole category.
INSERT INTO thrive_sync.tracking_log
    (dag_run_id, account_id, category, event_id, recipient_id, custom_member_id, activity_code,
     activity_subcode, occurred_at, reason_code, reason_detail, logged_at)
SELECT s.dag_run_id, s.account_id, s.category, s.event_id, s.recipient_id, s.custom_member_id,
       s.activity_code, s.activity_subcode, s.occurred_at, f.reason_code, f.reason_detail, now()
FROM unnest(%(account_ids)s::text[], %(event_ids)s::bigint[], %(reason_codes)s::text[], %(details)s::text[])
         AS f (account_id, event_id, reason_code, reason_detail)
JOIN thrive_sync.staged_events s
  ON s.dag_run_id = %(run_id)s AND s.category = %(category)s
 AND s.account_id = f.account_id AND s.event_id = f.event_id
WHERE s.event_id = ANY(%(event_ids)s::bigint[])
ON CONFLICT (dag_run_id, account_id, category, event_id) DO UPDATE
SET reason_code = EXCLUDED.reason_code, reason_detail = EXCLUDED.reason_detail, logged_at = EXCLUDED.logged_at;
