-- Remember this run's answers from the org; a task running alongside may save the same Ids at the
-- same moment, so rows go in sorted order (two inserts of overlapping keys never wait on each other
-- in a cycle) and a key already there is left as it is.
INSERT INTO thrive_sync.member_matches (dag_run_id, salesforce_conn_id, sf_id, found, target, redirect, detail)
SELECT %(run_id)s, %(conn_id)s, f.sf_id, f.target IS NOT NULL, f.target, f.redirect, f.detail
FROM unnest(%(sf_ids)s::text[], %(targets)s::text[], %(redirects)s::text[], %(details)s::text[])
     AS f (sf_id, target, redirect, detail)
ORDER BY f.sf_id
ON CONFLICT DO NOTHING;
