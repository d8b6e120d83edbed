-- Member Ids this run already looked up in this org (by any category's task), and what the org said.
SELECT sf_id, CASE WHEN found THEN coalesce(target, sf_id) END, redirect, detail
FROM thrive_sync.member_matches
WHERE dag_run_id = %(run_id)s AND salesforce_conn_id = %(conn_id)s AND sf_id = ANY(%(sf_ids)s::text[]);
