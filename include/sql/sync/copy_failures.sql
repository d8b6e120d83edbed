-- Rows that failed validation or matching, with the source values the task already holds: COPY,
-- no join back to the staging table.
COPY thrive_sync.tracking_log
    (dag_run_id, account_id, category, event_id, recipient_id, custom_member_id, activity_code,
     activity_subcode, occurred_at, reason_code, reason_detail)
FROM STDIN
