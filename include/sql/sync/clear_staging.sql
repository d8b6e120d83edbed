-- The run is reported: its staged rows have served their purpose.
DELETE FROM thrive_sync.staged_events WHERE dag_run_id = %(run_id)s;
