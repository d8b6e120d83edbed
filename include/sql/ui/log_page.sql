-- A page of the tracking log under the page's filters (each filter is off when NULL).
SELECT dag_run_id, account_id, category, event_id, recipient_id, custom_member_id,
       activity_code, activity_subcode, occurred_at, reason_code, reason_detail, logged_at
FROM thrive_sync.tracking_log
WHERE (%(run_id)s::text IS NULL OR dag_run_id = %(run_id)s)
  AND (%(account_id)s::text IS NULL OR account_id = %(account_id)s)
  AND (%(category)s::text IS NULL OR category = %(category)s)
  AND (%(reason_code)s::text IS NULL OR reason_code = %(reason_code)s)
  AND (%(member_id)s::text IS NULL OR custom_member_id = %(member_id)s)
  AND (%(event_id)s::bigint IS NULL OR event_id = %(event_id)s::bigint)
ORDER BY dag_run_id DESC, category, account_id, event_id
LIMIT %(limit)s OFFSET %(offset)s;
