-- The open failures the ledger carries forward, per event day, for the %(days)s days up to the newest
-- day a run synced (the chart's days): failed or deferred rows, by their latest outcome.
SELECT occurred_at::date AS day, count(*) AS open
FROM thrive_sync.event_ledger
WHERE status IN ('failed', 'deferred')
  AND occurred_at >= (SELECT max(window_start) FROM thrive_sync.sync_runs) - make_interval(days => %(days)s - 1)
GROUP BY 1
ORDER BY 1;
