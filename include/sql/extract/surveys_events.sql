{#- The survey_event_activity events from b.consider_from to b.consider_to (extract/stage.sql
    sets them), with the recipient (Custom Member ID, social handles);
    detail = the survey's or event's name. extract/stage.sql decides which of them the run stages. -#}
{% set category = "surveys_events" %}
{% set source_sql %}
        SELECT e.account_id, e.event_id, e.recipient_id, r.recipient_id IS NOT NULL AS recipient_found,
               r.custom_member_id, r.facebook_handle, r.twitter_handle, e.activity_code, e.activity_subcode,
               e.occurred_at, NULL::bigint AS message_id, NULL::boolean AS message_found,
               NULL::text AS message_name, e.survey_or_event_name AS detail, e.xmin AS event_version,
               r.xmin AS recipient_version, e.xmin AS message_version  -- no message: the event's own
        FROM thrive.survey_event_activity e
        LEFT JOIN thrive.recipients r ON r.account_id = e.account_id AND r.recipient_id = e.recipient_id
        WHERE e.occurred_at >= b.consider_from AND e.occurred_at < b.consider_to
{% endset %}
{% include "extract/stage.sql" %}
