-- The ledger rows of records the retention DAG deleted: status purged, so that no later run sends
-- them again (extract/stage.sql counts them as unchanged on their day and considers them no more).
-- Each key comes from a deleted record: its external ID (account and event) and its activity time,
-- which the org keeps to the millisecond (to_char's MS in the sync truncates). The round's first and
-- last times bound the statement, so the planner reads only those days' partitions. How many rows
-- were marked (a record written before the ledger existed has none).
WITH marked AS (
    UPDATE thrive_sync.event_ledger l
    SET status = 'purged', reason_code = NULL, error_code = NULL, last_dag_run_id = %(run_id)s
    FROM unnest(%(account_ids)s::text[], %(event_ids)s::bigint[], %(occurred_at)s::timestamptz[])
         AS p (account_id, event_id, occurred_at)
    WHERE l.account_id = p.account_id AND l.category = %(category)s AND l.event_id = p.event_id
      AND l.occurred_at >= p.occurred_at AND l.occurred_at < p.occurred_at + interval '1 millisecond'
      AND l.occurred_at >= %(first_at)s::timestamptz AND l.occurred_at < %(last_at)s::timestamptz + interval '1 millisecond'
      AND l.status <> 'purged'
    RETURNING 1
)
SELECT count(*) FROM marked;
