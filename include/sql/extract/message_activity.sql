{#- The message_activity events from b.consider_from to b.consider_to (extract/stage.sql
    sets them), with the recipient (Custom Member ID, social handles) and the message;
    detail = the link URL. extract/stage.sql decides which of them the run stages. -#}
{% set category = "message_activity" %}
{% set source_sql %}
        SELECT e.account_id, e.event_id, e.recipient_id, r.recipient_id IS NOT NULL AS recipient_found,
               r.custom_member_id, r.facebook_handle, r.twitter_handle, e.activity_code, e.activity_subcode,
               e.occurred_at, e.message_id, m.message_id IS NOT NULL AS message_found, m.name AS message_name,
               e.link_url AS detail, e.xmin AS event_version, r.xmin AS recipient_version,
               m.xmin AS message_version
        FROM thrive.message_activity e
        LEFT JOIN thrive.recipients r ON r.account_id = e.account_id AND r.recipient_id = e.recipient_id
        LEFT JOIN thrive.messages m ON m.account_id = e.account_id AND m.message_id = e.message_id
        WHERE e.occurred_at >= b.consider_from AND e.occurred_at < b.consider_to
{% endset %}
{% include "extract/stage.sql" %}
