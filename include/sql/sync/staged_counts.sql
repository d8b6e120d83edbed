-- What the extract considered per account of the task's part (extract/stage.sql): the part's staged
-- rows, and the late, retried and standing among them; shard 0 also counts the day's unchanged rows
-- (per account in staged_tallies, never staged), so that the shards of an org add up to the
-- account's tally; staged rows another run of the day wrote meanwhile (settle_overlap.sql) are
-- unchanged too. The operator's conservation check compares.
SELECT t.account_id, coalesce(s.staged, 0) + u.unchanged, u.unchanged + coalesce(s.unchanged, 0),
       coalesce(s.late, 0), coalesce(s.retried, 0), coalesce(s.standing, 0)
FROM thrive_sync.staged_tallies t
CROSS JOIN LATERAL (SELECT CASE WHEN %(shard)s::integer = 0 THEN t.unchanged ELSE 0 END AS unchanged) u
LEFT JOIN (
    SELECT s.account_id, count(*) AS staged, count(*) FILTER (WHERE s.consideration = 'unchanged') AS unchanged,
           count(*) FILTER (WHERE s.consideration = 'late') AS late,
           count(*) FILTER (WHERE s.consideration = 'retried') AS retried,
           count(*) FILTER (WHERE s.consideration = 'standing') AS standing
    FROM thrive_sync.staged_events s
    WHERE s.dag_run_id = %(run_id)s AND s.category = %(category)s
      AND s.account_id = ANY(%(account_ids)s::text[]) AND thrive_sync.shard_of(s.custom_member_id, %(shards)s) = %(shard)s
    GROUP BY s.account_id
) s ON s.account_id = t.account_id
WHERE t.dag_run_id = %(run_id)s AND t.category = %(category)s AND t.account_id = ANY(%(account_ids)s::text[]);
