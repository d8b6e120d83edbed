-- The day's failures nothing could heal (consideration 'standing'): not sent again, but logged again
-- under this run, with the ledger's reason and the detail the run that last tried them logged; the
-- count per account and reason, for the run's counts.
WITH logged AS (
    INSERT INTO thrive_sync.tracking_log
        (dag_run_id, account_id, category, event_id, recipient_id, custom_member_id, activity_code,
         activity_subcode, occurred_at, reason_code, reason_detail, logged_at)
    SELECT s.dag_run_id, s.account_id, s.category, s.event_id, s.recipient_id, s.custom_member_id,
           s.activity_code, s.activity_subcode, s.occurred_at, coalesce(l.reason_code, 'REJECTED'),
           coalesce(p.reason_detail, 'unchanged since ' || l.last_dag_run_id), now()
    FROM thrive_sync.staged_events s
    JOIN thrive_sync.event_ledger l
      ON l.account_id = s.account_id AND l.category = s.category AND l.event_id = s.event_id
     AND l.occurred_at = s.occurred_at
    LEFT JOIN thrive_sync.tracking_log p
      ON p.dag_run_id = l.last_dag_run_id AND p.account_id = s.account_id AND p.category = s.category
     AND p.event_id = s.event_id
    WHERE s.dag_run_id = %(run_id)s AND s.category = %(category)s AND s.consideration = 'standing'
      AND s.account_id = ANY(%(account_ids)s::text[]) AND thrive_sync.shard_of(s.custom_member_id, %(shards)s) = %(shard)s
    ON CONFLICT (dag_run_id, account_id, category, event_id) DO UPDATE
    SET reason_code = EXCLUDED.reason_code, reason_detail = EXCLUDED.reason_detail, logged_at = EXCLUDED.logged_at
    RETURNING account_id, reason_code
)
SELECT account_id, reason_code, count(*) FROM logged GROUP BY 1, 2;
