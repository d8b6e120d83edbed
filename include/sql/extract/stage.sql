-- Stage the {{ category }} events this run acts on, each with why (consideration) and the digest of
-- its content, and count the rest; included by extract/{{ category }}.sql, which gives the source rows
-- from b.consider_from to b.consider_to as source_sql.
-- What a run considers (docs/design.md, The event ledger), the same rule as in Python:
-- thrive_sync.core.ledger.consideration, which the tests hold this file to.
--   its day: every row; a row the ledger holds as written with the same content is 'unchanged'
--     (counted, never staged or sent) unless resend_unchanged, and so is one whose record the
--     retention DAG deleted (purged), always; a failure nothing could heal (same
--     content, not a healing reason, or out of attempts) is 'standing' (logged again from the
--     ledger, never sent);
--   the lookback_days before it: rows the ledger lacks (late arrivals) or whose content changed;
--   the retry_days before it: failures that can heal, tried fewer than max_attempts times. Only the
--     ledger's failures are looked up in the source (by key) for the days before the lookback: a
--     week of source rows is never read for the few that failed.
-- Rows that need nothing never leave PostgreSQL and are not written anywhere: the unchanged ones of
-- the day are counted as the day's rows less the ones staged. Idempotent: a retried extract
-- replaces the run's rows.
{%- set lookback_from %}(%(window_start)s::timestamptz - make_interval(days => %(lookback_days)s::integer)){% endset %}
{%- set retry_from %}(%(window_start)s::timestamptz - make_interval(days => %(retry_days)s::integer)){% endset %}
{#- The day a row is in, as a run last looked at it in full (the CTE seen below; none: never, or
    under another mapping, or resend_unchanged), and whether the row is the very row that run saw:
    its event, recipient and message versions written by transactions visible in that run's snapshot. -#}
{%- set seen_days %}LEFT JOIN seen w ON w.day = (s.occurred_at AT TIME ZONE 'UTC')::date{% endset %}
{#- A row version's xmin is visible in the saved snapshot when it is older than the snapshot's
    oldest running transaction (its xmin), or older than its first unassigned one (its xmax) and not
    one it saw running: strictly older, both. Ages count back from the current snapshot's xmax in
    32 bits, as xmin has: exact for every transaction of the last 2^31 (PostgreSQL freezes older
    rows; a frozen row taken for a newer one is only looked at again, never taken for unchanged
    wrongly). -#}
{%- macro seen(version) %}({{ version }} IS NOT NULL AND (
                       ((w.newest - {{ version }}::text::bigint) & 4294967295) > w.xmin_age
                       OR ((w.newest - {{ version }}::text::bigint) & 4294967295) > w.xmax_age
                          AND {{ version }}::text::bigint <> ALL (w.running))){% endmacro %}
{%- set unchanged_since_seen %}(w.day IS NOT NULL AND {{ seen("s.event_version") }}
                   AND {{ seen("s.recipient_version") }} AND {{ seen("s.message_version") }}){% endset %}
{%- macro healing(t) %}({{ t }}.status = 'deferred' OR {{ t }}.reason_code = ANY (%(healing_reasons)s::text[])
                   OR ({{ t }}.reason_code = 'REJECTED' AND {{ t }}.error_code = ANY (%(healing_error_codes)s::text[]))){% endmacro %}

-- One snapshot of the source for the whole extract: the day's count, from which the unchanged rows
-- are counted, must see the rows the INSERT saw.
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ;

DELETE FROM thrive_sync.staged_events WHERE dag_run_id = %(run_id)s AND category = '{{ category }}';

DELETE FROM thrive_sync.staged_tallies WHERE dag_run_id = %(run_id)s AND category = '{{ category }}';

WITH seen AS MATERIALIZED (  -- the days of the category a run looked at in full, once per statement
    SELECT w.day, n.newest & 4294967295 AS newest,
           n.newest - pg_snapshot_xmin(w.source_snapshot)::text::bigint AS xmin_age,
           n.newest - pg_snapshot_xmax(w.source_snapshot)::text::bigint AS xmax_age,
           ARRAY(SELECT x::text::bigint & 4294967295 FROM pg_snapshot_xip(w.source_snapshot) x) AS running
    FROM thrive_sync.considered_days w
    CROSS JOIN (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS newest) n
    WHERE w.category = '{{ category }}' AND w.mapping_digest = %(mapping_digest)s
      AND NOT %(resend_unchanged)s::boolean
)
INSERT INTO thrive_sync.staged_events
    (dag_run_id, category, account_id, event_id, recipient_id, recipient_found, custom_member_id,
     facebook_handle, twitter_handle, activity_code, activity_subcode, occurred_at,
     message_id, message_found, message_name, detail, consideration, content_hash)
SELECT %(run_id)s, '{{ category }}', c.account_id, c.event_id, c.recipient_id, c.recipient_found,
       c.custom_member_id, c.facebook_handle, c.twitter_handle, c.activity_code, c.activity_subcode,
       c.occurred_at, c.message_id, c.message_found, c.message_name, c.detail, c.consideration, c.content_hash
FROM (
    SELECT s.*, h.content_hash,
           CASE
               WHEN s.occurred_at >= %(window_start)s THEN  -- the run's day
                   CASE
                       WHEN NOT s.known THEN 'new'
                       WHEN s.status = 'purged' THEN 'unchanged'  -- deleted by retention: never sent again
                       WHEN s.status IN ('failed', 'deferred') THEN
                           CASE
                               WHEN s.known_hash <> h.content_hash OR %(resend_unchanged)s::boolean
                                    OR (s.attempts < %(max_attempts)s::integer AND {{ healing("s") }})
                                   THEN 'retried'
                               ELSE 'standing'  -- it would fail the same way: logged again, not sent
                           END
                       WHEN s.status = 'written' AND s.known_hash = h.content_hash
                            AND NOT %(resend_unchanged)s::boolean THEN 'unchanged'
                       ELSE 'new'
                   END
               WHEN NOT s.known THEN  -- before the day, never seen: late, within the lookback
                   CASE WHEN s.occurred_at >= {{ lookback_from }} THEN 'late' END
               WHEN s.status = 'purged' THEN NULL
               WHEN s.status = 'written' AND s.known_hash = h.content_hash THEN NULL
               WHEN s.status IN ('failed', 'deferred') AND s.occurred_at >= {{ retry_from }}
                    AND s.attempts < %(max_attempts)s::integer
                    AND (s.known_hash <> h.content_hash OR {{ healing("s") }})
                   THEN 'retried'
               WHEN s.known_hash <> h.content_hash AND s.occurred_at >= {{ lookback_from }} THEN 'late'
           END AS consideration
    FROM (
        -- the day and the lookback_days before it: every source row that may have changed since a
        -- run last looked at its day, with its ledger row if any
        SELECT s.*, coalesce(lu.event_id, lw.event_id) IS NOT NULL AS known,
               coalesce(lu.status, lw.status) AS status, coalesce(lu.reason_code, lw.reason_code) AS reason_code,
               coalesce(lu.error_code, lw.error_code) AS error_code, coalesce(lu.attempts, lw.attempts) AS attempts,
               coalesce(lu.content_hash, lw.content_hash) AS known_hash
        FROM (
            SELECT s.*, w.day AS seen_day
            FROM (SELECT {{ lookback_from }} AS consider_from, %(window_end)s::timestamptz AS consider_to) b
            CROSS JOIN LATERAL (
{{ source_sql }}
            ) s
            {{ seen_days }}
            WHERE NOT {{ unchanged_since_seen }}
            OFFSET 0  -- filtered before the ledger is joined: a rerun joins nothing
        ) s
        -- Their ledger rows: those of days no run looked at in full in one hash join with only those
        -- days' partitions (a first run: its own day's, still empty; pruned when the statement
        -- starts), those of rows changed in days a run did look at one by one (a handful).
        LEFT JOIN thrive_sync.event_ledger lu
            ON lu.account_id = s.account_id AND lu.category = '{{ category }}' AND lu.event_id = s.event_id
           AND lu.occurred_at = s.occurred_at AND s.seen_day IS NULL
           AND lu.occurred_at >= (
               SELECT greatest(min(d.day)::timestamp AT TIME ZONE 'UTC', {{ lookback_from }})
               FROM generate_series(({{ lookback_from }} AT TIME ZONE 'UTC')::date,
                                    (%(window_end)s::timestamptz AT TIME ZONE 'UTC')::date, interval '1 day') d (day)
               WHERE d.day::date NOT IN (SELECT day FROM seen))
           AND lu.occurred_at < %(window_end)s::timestamptz
        LEFT JOIN LATERAL (
            SELECT * FROM thrive_sync.event_ledger lw
            WHERE s.seen_day IS NOT NULL AND lw.account_id = s.account_id AND lw.category = '{{ category }}'
              AND lw.event_id = s.event_id AND lw.occurred_at = s.occurred_at
              AND lw.occurred_at >= {{ lookback_from }} AND lw.occurred_at < %(window_end)s::timestamptz
            LIMIT 1
        ) lw ON true
        UNION ALL
        -- the ledger's rows that can be tried again that the part above left out, looked up by key:
        -- the day's failures, deferred and skipped rows that have not changed; the lookback's that
        -- can heal and have not changed (a changed one is above); the failures of the days before
        -- the lookback (the digest tells a changed one)
        SELECT s.*, true, l.status, l.reason_code, l.error_code, l.attempts, l.content_hash
        FROM thrive_sync.event_ledger l
        {{ seen_days | replace("s.occurred_at", "l.occurred_at") }}
        CROSS JOIN LATERAL (
            SELECT s.*, NULL::date AS seen_day
            FROM (SELECT {{ retry_from }} AS consider_from, %(window_end)s::timestamptz AS consider_to) b
            CROSS JOIN LATERAL (
{{ source_sql }}
            ) s
            WHERE s.account_id = l.account_id AND s.event_id = l.event_id AND s.occurred_at = l.occurred_at
            LIMIT 1  -- the source's key: one row. Keeps the lookup a subquery run per ledger row (found by
                     -- key, its recipient and message by key); flattened, the planner multiplied the
                     -- three keys' selectivities to one row in all and joined 41,000 rows with every
                     -- recipient (a rerun's extract: 38 s instead of 3)
        ) s
        WHERE l.category = '{{ category }}' AND l.status NOT IN ('written', 'purged')
          AND l.occurred_at >= {{ retry_from }} AND l.occurred_at < %(window_end)s::timestamptz
          AND (l.occurred_at >= %(window_start)s
               OR l.status IN ('failed', 'deferred') AND l.attempts < %(max_attempts)s::integer
                  AND (l.occurred_at < {{ lookback_from }} OR {{ healing("l") }}))
          AND (l.occurred_at < {{ lookback_from }} OR {{ unchanged_since_seen }})
    ) s
    CROSS JOIN LATERAL (
        -- The digest of everything the record is made of: the mapping file's digest and every staged
        -- source value but the key (a row's text form tells a null from an empty text). occurred_at
        -- is part of the ledger's key, so a row whose time changed is another ledger row.
        SELECT encode(sha256(convert_to(row(
            %(mapping_digest)s::text, s.recipient_id, s.recipient_found, s.custom_member_id, s.facebook_handle,
            s.twitter_handle, s.activity_code, s.activity_subcode, s.message_id, s.message_found,
            s.message_name, s.detail)::text, 'UTF8')), 'hex') AS content_hash
    ) h
) c
WHERE c.consideration <> 'unchanged';  -- null: needs nothing

-- Fresh statistics for the rows just staged: without them the planner takes the new run's rows for
-- a handful (its dag_run_id is in no earlier sample) and joins them with the tracking log and the
-- ledger row by row; measured: the ledger write of 164,000 rows took 163 s instead of 1.5 s. Only
-- the columns that say how many rows a run has, on a small sample (schema: statistics 10): 15 ms
-- instead of 310 ms for the whole table, five times a run.
ANALYZE thrive_sync.staged_events (dag_run_id, category, account_id);

-- Per account: every row considered (the day's and those staged from days before), the day's
-- unchanged ones (the day's rows less those staged), and the late, retried and standing ones.
INSERT INTO thrive_sync.staged_tallies
    (dag_run_id, category, account_id, events, unchanged, late, retried, standing,
     source_snapshot, considered_from, considered_to, mapping_digest, salesforce_conn_id)
SELECT %(run_id)s, '{{ category }}', account_id,
       coalesce(d.day_rows, 0) + coalesce(t.before_day, 0), coalesce(d.day_rows, 0) - coalesce(t.of_day, 0),
       coalesce(t.late, 0), coalesce(t.retried, 0), coalesce(t.standing, 0),
       pg_current_snapshot(), {{ lookback_from }}, %(window_end)s, %(mapping_digest)s,
       coalesce(nullif(btrim(a.salesforce_conn_id), ''), %(default_conn_id)s)  -- blank or none: the default
FROM (
    SELECT s.account_id, count(*) AS day_rows
    FROM (SELECT %(window_start)s::timestamptz AS consider_from, %(window_end)s::timestamptz AS consider_to) b
    CROSS JOIN LATERAL (
{{ source_sql }}
    ) s
    GROUP BY s.account_id
) d
FULL JOIN (
    SELECT account_id, count(*) FILTER (WHERE occurred_at >= %(window_start)s) AS of_day,
           count(*) FILTER (WHERE occurred_at < %(window_start)s) AS before_day,
           count(*) FILTER (WHERE consideration = 'late') AS late,
           count(*) FILTER (WHERE consideration = 'retried') AS retried,
           count(*) FILTER (WHERE consideration = 'standing') AS standing
    FROM thrive_sync.staged_events
    WHERE dag_run_id = %(run_id)s AND category = '{{ category }}'
    GROUP BY account_id
) t USING (account_id)
LEFT JOIN thrive.accounts a USING (account_id);

-- The run's parts of the category (thrive_sync.core.parts): one per Salesforce connection the
-- considered accounts name, split into ceil(events / shard_rows) shards, at most max_shards. Every run
-- of the day keeps the shard count of its first run (a retried extract, a rerun, a backfill): a row
-- stays in its shard, whose counts may be saved, and runs of the day meet on the same parts
-- (sync/advisory_lock.sql). A new extract makes every saved part of the category count as not saved
-- for the considered days (extracted_at; save_considered_days.sql).
INSERT INTO thrive_sync.run_parts AS r (dag_run_id, category, salesforce_conn_id, shard, shards, events, window_start)
SELECT %(run_id)s, '{{ category }}', o.conn_id, p.shard, o.shards, o.events, %(window_start)s::timestamptz
FROM (
    SELECT o.conn_id, o.events,
           coalesce((SELECT max(r.shards) FROM thrive_sync.run_parts r
                     WHERE r.category = '{{ category }}' AND r.window_start = %(window_start)s::timestamptz
                       AND r.salesforce_conn_id = o.conn_id),
                    greatest(1, least(%(max_shards)s::integer,
                                      ceil(o.events::numeric / %(shard_rows)s::integer))))::integer AS shards
    FROM (
        SELECT salesforce_conn_id AS conn_id, sum(events) AS events
        FROM thrive_sync.staged_tallies
        WHERE dag_run_id = %(run_id)s AND category = '{{ category }}'
        GROUP BY 1
    ) o
) o
CROSS JOIN LATERAL generate_series(0, o.shards - 1) AS p (shard)
ON CONFLICT (dag_run_id, category, salesforce_conn_id, shard) DO UPDATE
SET events = EXCLUDED.events, extracted_at = now();

-- The task's XCom, which the validate-and-map task expands over: (connection, shard, shards) a part,
-- a part listed by an earlier try first (its map index stays the same).
SELECT salesforce_conn_id, shard, shards
FROM thrive_sync.run_parts
WHERE dag_run_id = %(run_id)s AND category = '{{ category }}'
ORDER BY created_at, salesforce_conn_id, shard;
