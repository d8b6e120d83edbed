-- The org's health as the latest report left it (no row: never judged): its level, what the alerts
-- last said, and the day it was judged on.
SELECT level, said, window_start FROM thrive_sync.org_health WHERE salesforce_conn_id = %(conn_id)s;
