-- The open failures the ledger still carries forward: failed (or deferred) rows of the days from
-- retry_from to the end of the run's day, per category and reason.
SELECT category, coalesce(reason_code, status), count(*)
FROM thrive_sync.event_ledger
WHERE status IN ('failed', 'deferred') AND occurred_at >= %(retry_from)s AND occurred_at < %(window_end)s
GROUP BY 1, 2
ORDER BY 1, 2;
