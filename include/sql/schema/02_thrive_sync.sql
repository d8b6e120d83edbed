-- The package's own tables (CONTRACT.md §4): one row per run, account and category, and the
-- tracking log with one row per failed source event. Idempotent.
CREATE SCHEMA IF NOT EXISTS thrive_sync;

CREATE TABLE IF NOT EXISTS thrive_sync.sync_runs (
    dag_run_id   text NOT NULL,
    account_id   text NOT NULL,
    category     text NOT NULL,
    window_start timestamptz,
    window_end   timestamptz,
    extracted    integer,
    written      integer,
    failed       integer,
    skipped      integer,
    dry_run      boolean,
    started_at   timestamptz,
    finished_at  timestamptz,
    PRIMARY KEY (dag_run_id, account_id, category)
);

CREATE TABLE IF NOT EXISTS thrive_sync.tracking_log (
    dag_run_id       text NOT NULL,
    account_id       text NOT NULL,
    category         text NOT NULL,
    event_id         bigint NOT NULL,
    recipient_id     bigint,
    custom_member_id text,
    activity_code    text,
    activity_subcode text,
    occurred_at      timestamptz,
    reason_code      text NOT NULL,
    reason_detail    text,
    logged_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dag_run_id, account_id, category, event_id)
);

CREATE INDEX IF NOT EXISTS tracking_log_reason_idx ON thrive_sync.tracking_log (reason_code);
CREATE INDEX IF NOT EXISTS tracking_log_member_idx ON thrive_sync.tracking_log (custom_member_id);
