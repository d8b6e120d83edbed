-- surveys_events: this run's events per account, counted in the data interval [start, end).
SELECT account_id, count(*) AS events
FROM thrive.survey_event_activity
WHERE occurred_at >= %(window_start)s AND occurred_at < %(window_end)s
GROUP BY account_id
ORDER BY account_id;
