-- The run's syncs have ended (the teardown clear_staging): its staged rows, tallies and member lookups have served.
DELETE FROM thrive_sync.staged_events WHERE dag_run_id = %(run_id)s;
DELETE FROM thrive_sync.staged_tallies WHERE dag_run_id = %(run_id)s;
DELETE FROM thrive_sync.member_matches WHERE dag_run_id = %(run_id)s;
