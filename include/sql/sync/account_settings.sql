-- Each account's Salesforce connection and gates (a null flag counts as off), read once per task.
-- Staged rows of an account missing here are skipped as tracking_disabled.
SELECT account_id,
       coalesce(salesforce_conn_id, 'salesforce_default') AS salesforce_conn_id,
       coalesce(tracking_enabled, false)                  AS tracking_enabled,
       coalesce(marketing_automation_enabled, false)      AS marketing_automation_enabled,
       coalesce(social_crm_enabled, false)                AS social_crm_enabled
FROM thrive.accounts;
