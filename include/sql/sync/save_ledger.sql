-- One category's outcomes of this run into the event ledger, in the transaction that saves its counts:
-- every staged row the run acted on (not the unchanged and standing ones). Failed when this run's tracking log has it (with the org's
-- error code for REJECTED and RETRIES_EXHAUSTED; deferred, not sent, for DEFERRED_QUOTA), skipped when its account's gate is
-- closed or the mapping leaves its pair out, written
-- otherwise: the counts saved beside it add up, so every other row was confirmed by Salesforce.
INSERT INTO thrive_sync.event_ledger AS l
    (account_id, category, event_id, occurred_at, status, reason_code, error_code, content_hash,
     first_dag_run_id, last_dag_run_id, attempts, last_attempt_at, written_at, custom_member_id)
SELECT s.account_id, s.category, s.event_id, s.occurred_at,
       CASE WHEN t.reason_code = 'DEFERRED_QUOTA' THEN 'deferred' WHEN t.event_id IS NOT NULL THEN 'failed'
            WHEN g.gate IS NOT NULL OR p.left_out THEN 'skipped' ELSE 'written' END,
       coalesce(t.reason_code, g.gate, CASE WHEN p.left_out THEN 'left_out_by_mapping' END),
       CASE WHEN t.reason_code IN ('REJECTED', 'RETRIES_EXHAUSTED')
            THEN nullif(split_part(t.reason_detail, ':', 1), '') END,
       s.content_hash, s.dag_run_id, s.dag_run_id, CASE WHEN t.reason_code = 'DEFERRED_QUOTA' THEN 0 ELSE 1 END, now(),
       CASE WHEN t.event_id IS NULL AND g.gate IS NULL AND NOT p.left_out THEN now() END, s.custom_member_id
FROM thrive_sync.staged_events s
LEFT JOIN thrive_sync.tracking_log t
       ON t.dag_run_id = s.dag_run_id AND t.account_id = s.account_id AND t.category = s.category
      AND t.event_id = s.event_id
LEFT JOIN unnest(%(gate_accounts)s::text[], %(gates)s::text[]) AS g (account_id, gate) ON g.account_id = s.account_id
CROSS JOIN LATERAL (  -- a pair the mapping leaves out: skipped, as its account's gate would
    SELECT EXISTS (SELECT 1 FROM unnest(%(left_codes)s::text[], %(left_subcodes)s::text[]) AS x (code, subcode)
                   WHERE x.code = s.activity_code AND x.subcode = s.activity_subcode) AS left_out
) p
WHERE s.dag_run_id = %(run_id)s AND s.category = %(category)s
  AND s.account_id = ANY(%(account_ids)s::text[]) AND thrive_sync.shard_of(s.custom_member_id, %(shards)s) = %(shard)s  -- the task's part
  AND coalesce(s.consideration, 'new') NOT IN ('unchanged', 'standing')  -- not acted on: the ledger row stands
ON CONFLICT (account_id, category, event_id, occurred_at) DO UPDATE
SET status = EXCLUDED.status, reason_code = EXCLUDED.reason_code, error_code = EXCLUDED.error_code,
    content_hash = EXCLUDED.content_hash, last_dag_run_id = EXCLUDED.last_dag_run_id,
    attempts = l.attempts + EXCLUDED.attempts,  -- a deferred row was not sent: no attempt
    last_attempt_at = EXCLUDED.last_attempt_at,
    written_at = coalesce(EXCLUDED.written_at, l.written_at), custom_member_id = EXCLUDED.custom_member_id;
