-- A (re)started validate-and-map task logs its category's failures for the run from scratch.
DELETE FROM thrive_sync.tracking_log WHERE dag_run_id = %(run_id)s AND category = %(category)s;
