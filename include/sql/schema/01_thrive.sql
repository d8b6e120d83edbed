-- Source tables: the tracking store as exported by Thrive Marketing Enterprise (CONTRACT.md §3).
-- Idempotent: every statement may run again against a database that already has them.
-- Only primary-key columns are NOT NULL: a real export can carry nulls anywhere else, and
-- validation reports such rows (reason INVALID_ROW, MISSING_MEMBER_ID, ...) instead of the load refusing them.
CREATE SCHEMA IF NOT EXISTS thrive;

CREATE TABLE IF NOT EXISTS thrive.accounts (
    account_id                   text PRIMARY KEY,
    name                         text,
    tracking_enabled             boolean,
    marketing_automation_enabled boolean,
    social_crm_enabled           boolean,
    salesforce_conn_id           text DEFAULT 'salesforce_default'
);

CREATE TABLE IF NOT EXISTS thrive.recipients (
    account_id       text   NOT NULL,
    recipient_id     bigint NOT NULL,
    email            text,
    phone            text,
    custom_member_id text,  -- the integration Id: a Salesforce Contact (003...) or Lead (00Q...) Id
    facebook_handle  text,
    twitter_handle   text,
    PRIMARY KEY (account_id, recipient_id)
);

CREATE TABLE IF NOT EXISTS thrive.messages (
    account_id text   NOT NULL,
    message_id bigint NOT NULL,
    name       text,
    channel    text,  -- email | sms | fax
    sent_at    timestamptz,
    PRIMARY KEY (account_id, message_id)
);

CREATE TABLE IF NOT EXISTS thrive.message_activity (
    account_id       text   NOT NULL,
    event_id         bigint NOT NULL,
    recipient_id     bigint,
    activity_code    text,
    activity_subcode text,
    occurred_at      timestamptz,
    message_id       bigint,
    link_url         text,  -- for LinkClicked
    PRIMARY KEY (account_id, event_id)
);

CREATE TABLE IF NOT EXISTS thrive.recipient_activity (
    account_id        text   NOT NULL,
    event_id          bigint NOT NULL,
    recipient_id      bigint,
    activity_code     text,
    activity_subcode  text,
    occurred_at       timestamptz,
    message_id        bigint,
    source_account_id text,  -- for the *AcrossAccts suppressions
    PRIMARY KEY (account_id, event_id)
);

CREATE TABLE IF NOT EXISTS thrive.automation_activity (
    account_id       text   NOT NULL,
    event_id         bigint NOT NULL,
    recipient_id     bigint,
    activity_code    text,
    activity_subcode text,
    occurred_at      timestamptz,
    page_url         text,
    goal_name        text,
    PRIMARY KEY (account_id, event_id)
);

CREATE TABLE IF NOT EXISTS thrive.social_activity (
    account_id       text   NOT NULL,
    event_id         bigint NOT NULL,
    recipient_id     bigint,
    activity_code    text,
    activity_subcode text,
    occurred_at      timestamptz,
    post_url         text,
    PRIMARY KEY (account_id, event_id)
);

CREATE TABLE IF NOT EXISTS thrive.survey_event_activity (
    account_id           text   NOT NULL,
    event_id             bigint NOT NULL,
    recipient_id         bigint,
    activity_code        text,
    activity_subcode     text,
    occurred_at          timestamptz,
    survey_or_event_name text,
    PRIMARY KEY (account_id, event_id)
);

-- The daily extracts select one data interval by occurred_at.
CREATE INDEX IF NOT EXISTS message_activity_occurred_at_idx      ON thrive.message_activity (occurred_at);
CREATE INDEX IF NOT EXISTS recipient_activity_occurred_at_idx    ON thrive.recipient_activity (occurred_at);
CREATE INDEX IF NOT EXISTS automation_activity_occurred_at_idx   ON thrive.automation_activity (occurred_at);
CREATE INDEX IF NOT EXISTS social_activity_occurred_at_idx       ON thrive.social_activity (occurred_at);
CREATE INDEX IF NOT EXISTS survey_event_activity_occurred_at_idx ON thrive.survey_event_activity (occurred_at);
