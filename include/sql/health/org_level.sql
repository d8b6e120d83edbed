-- The org's health as the latest report left it (no row: never judged).
SELECT level FROM thrive_sync.org_health WHERE salesforce_conn_id = %(conn_id)s;
