-- `make bench` only: one day's events of every category as Thrive_Activity__c rows (the default
-- mapping's fields), mapped in SQL with no validation at all. Baselines b (the floor: COPY'd out as
-- CSV, one Bulk 2.0 upsert) and c (the provider's SalesforceBulkOperator, rows through XCom) send these.
-- Contact__c / Lead__c: the Custom Member ID as it stands, by prefix; the org rejects the bad ones.
WITH events AS (
    SELECT 'message_activity' AS category, e.account_id, e.event_id, e.recipient_id, e.activity_code,
           e.activity_subcode, e.occurred_at, e.message_id, m.name AS message_name, e.link_url AS detail
    FROM thrive.message_activity e
    LEFT JOIN thrive.messages m ON m.account_id = e.account_id AND m.message_id = e.message_id
    WHERE e.occurred_at >= %(window_start)s AND e.occurred_at < %(window_end)s
    UNION ALL
    SELECT 'recipient_details', account_id, event_id, recipient_id, activity_code, activity_subcode,
           occurred_at, message_id, NULL, source_account_id
    FROM thrive.recipient_activity
    WHERE occurred_at >= %(window_start)s AND occurred_at < %(window_end)s
    UNION ALL
    SELECT 'marketing_automation', account_id, event_id, recipient_id, activity_code, activity_subcode,
           occurred_at, NULL, NULL, coalesce(page_url, goal_name)
    FROM thrive.automation_activity
    WHERE occurred_at >= %(window_start)s AND occurred_at < %(window_end)s
    UNION ALL
    SELECT 'social_crm', account_id, event_id, recipient_id, activity_code, activity_subcode,
           occurred_at, NULL, NULL, post_url
    FROM thrive.social_activity
    WHERE occurred_at >= %(window_start)s AND occurred_at < %(window_end)s
    UNION ALL
    SELECT 'surveys_events', account_id, event_id, recipient_id, activity_code, activity_subcode,
           occurred_at, NULL, NULL, survey_or_event_name
    FROM thrive.survey_event_activity
    WHERE occurred_at >= %(window_start)s AND occurred_at < %(window_end)s
)
SELECT e.account_id || ':' || e.category || ':' || e.event_id                          AS "Thrive_Event_Id__c",
       e.activity_code                                                                 AS "Activity_Group__c",
       e.activity_subcode                                                              AS "Activity__c",
       to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')      AS "Activity_Date__c",
       CASE WHEN left(r.custom_member_id, 3) = '003' THEN r.custom_member_id END       AS "Contact__c",
       CASE WHEN left(r.custom_member_id, 3) = '00Q' THEN r.custom_member_id END       AS "Lead__c",
       e.category                                                                      AS "Category__c",
       e.account_id                                                                    AS "Thrive_Account_Id__c",
       e.message_id::text                                                              AS "Message_Id__c",
       e.message_name                                                                  AS "Message_Name__c",
       e.detail                                                                        AS "Detail__c"
FROM events e
LEFT JOIN thrive.recipients r ON r.account_id = e.account_id AND r.recipient_id = e.recipient_id
