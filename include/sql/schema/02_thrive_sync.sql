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
    skip_gate    text,     -- the account gate that skipped the rows, when one did
    truncated    integer,  -- values cut to fit by the mapping's truncate rules
    PRIMARY KEY (dag_run_id, account_id, category)
);

-- Columns added after the first release: existing databases get them here.
ALTER TABLE thrive_sync.sync_runs ADD COLUMN IF NOT EXISTS skip_gate text;
ALTER TABLE thrive_sync.sync_runs ADD COLUMN IF NOT EXISTS truncated integer;

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

-- Each run's extracted events, one row per source event and category: the extract tasks fill it,
-- the validate-and-map tasks stream it (rows travel between tasks here, never through XCom), and the
-- report task empties the run's rows once it succeeded. Keyed so that a retried extract replaces
-- its own rows. UNLOGGED: no WAL for a million rows written and read once a day. A crash empties it,
-- which costs nothing but a rerun (the extracts are idempotent); it is not copied to replicas.
CREATE UNLOGGED TABLE IF NOT EXISTS thrive_sync.staged_events (
    dag_run_id       text   NOT NULL,
    category         text   NOT NULL,
    account_id       text   NOT NULL,
    event_id         bigint NOT NULL,
    recipient_id     bigint,
    recipient_found  boolean NOT NULL,
    custom_member_id text,
    facebook_handle  text,
    twitter_handle   text,
    activity_code    text,
    activity_subcode text,
    occurred_at      timestamptz,
    message_id       bigint,
    message_found    boolean,
    message_name     text,
    detail           text,
    PRIMARY KEY (dag_run_id, category, account_id, event_id)
);

DO $$
BEGIN  -- databases made before staging was UNLOGGED
    IF (SELECT relpersistence FROM pg_class WHERE oid = 'thrive_sync.staged_events'::regclass) = 'p' THEN
        ALTER TABLE thrive_sync.staged_events SET UNLOGGED;
    END IF;
END $$;

-- Which Custom Member IDs exist in which org, as looked up during a run: the five validate-and-map
-- tasks share recipients, and each Id is asked of Salesforce once per run instead of once per task.
-- The report task empties the run's rows. UNLOGGED, like the staging table: a cache, rebuilt on loss.
CREATE UNLOGGED TABLE IF NOT EXISTS thrive_sync.member_matches (
    dag_run_id         text    NOT NULL,
    salesforce_conn_id text    NOT NULL,
    sf_id              text    NOT NULL,  -- 18-character Contact or Lead Id
    found              boolean NOT NULL,
    PRIMARY KEY (dag_run_id, salesforce_conn_id, sf_id)
);

-- Every Bulk API 2.0 job a validate-and-map task made, recorded before its data is sent: a try of the
-- task killed outright (SIGKILL, a lost worker) cannot abort its own jobs, so the next try aborts
-- the ones not marked ended here before it sends the same rows again. A few rows a day per org, kept
-- as the record of which jobs in the org's Bulk Data Load Jobs page a run made.
CREATE TABLE IF NOT EXISTS thrive_sync.bulk_jobs (
    salesforce_conn_id text        NOT NULL,
    job_id             text        NOT NULL,
    dag_run_id         text        NOT NULL,
    category           text        NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    ended_at           timestamptz,  -- null: not seen to end by the try that made it
    state              text,         -- the job's last known state: JobComplete, Failed or Aborted
    PRIMARY KEY (salesforce_conn_id, job_id)
);

CREATE INDEX IF NOT EXISTS bulk_jobs_run_idx ON thrive_sync.bulk_jobs (dag_run_id, category);
