-- Each account's Salesforce connection and gates (CONTRACT.md §3): tracking, Marketing Automation,
-- Social CRM. A blank connection is the default. A null flag counts as off: tracking is pushed only where the account switched it on.
-- Staged rows of an account missing here are skipped as tracking_disabled.
SELECT account_id,
       coalesce(nullif(btrim(salesforce_conn_id), ''), %(default_conn_id)s) AS salesforce_conn_id,
       coalesce(tracking_enabled, false)                  AS tracking_enabled,
       coalesce(marketing_automation_enabled, false)      AS marketing_automation_enabled,
       coalesce(social_crm_enabled, false)                AS social_crm_enabled
FROM thrive.accounts
ORDER BY account_id;
