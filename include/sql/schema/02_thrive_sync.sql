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
    unchanged    integer,  -- rows of the day the ledger holds as written with the same content: not sent
    late         integer,  -- rows from the days before: late arrivals, or changed since their day ran
    retried      integer,  -- earlier failures carried forward
    healed       integer,  -- of the retried, how many did not fail again
    standing     integer,  -- of the failed, those that failed before and were logged again, not sent
    deferred     integer,  -- of the failed, those not sent for the org's daily allowance (DEFERRED_QUOTA)
    left_out     integer,  -- of the skipped, rows of pairs the mapping file leaves out (left_out_by_mapping)
    converted    integer,  -- of the written, sent to the Contact a converted Lead became
    merged       integer,  -- of the written, sent to the record a merged-away member Id now is
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
    consideration    text,  -- why the run considers the row: new | late | retried | unchanged
    content_hash     text,  -- the digest the ledger keeps (extract/stage.sql)
    PRIMARY KEY (dag_run_id, category, account_id, event_id)
);

-- The extract analyzes these columns after each staging (extract/stage.sql): a small sample says how
-- many rows a run has as well as a large one, in a twentieth of the time.
ALTER TABLE thrive_sync.staged_events
    ALTER COLUMN dag_run_id SET STATISTICS 10, ALTER COLUMN category SET STATISTICS 10,
    ALTER COLUMN account_id SET STATISTICS 10;
ALTER TABLE thrive_sync.tracking_log  -- analyzed by each task once its failures are in (sync/analyze_log.sql)
    ALTER COLUMN dag_run_id SET STATISTICS 10, ALTER COLUMN category SET STATISTICS 10;

DO $$
BEGIN  -- databases made before staging was UNLOGGED
    IF (SELECT relpersistence FROM pg_class WHERE oid = 'thrive_sync.staged_events'::regclass) = 'p' THEN
        ALTER TABLE thrive_sync.staged_events SET UNLOGGED;
    END IF;
END $$;

-- What each extract considered per account, beside the rows it staged: the unchanged rows of the
-- day are counted here and never staged (at a million events a day, a rerun would otherwise copy
-- the whole day into staging to say that nothing changed). The validate-and-map task's conservation
-- check reads it; the teardown empties the run's rows.
CREATE UNLOGGED TABLE IF NOT EXISTS thrive_sync.staged_tallies (
    dag_run_id text    NOT NULL,
    category   text    NOT NULL,
    account_id text    NOT NULL,
    events     integer NOT NULL,  -- every row considered: staged or unchanged
    unchanged  integer NOT NULL,
    late       integer NOT NULL,
    retried    integer NOT NULL,
    standing   integer NOT NULL,
    -- the snapshot the extract read the source under, the time it looked at in full and the
    -- mapping: saved as thrive_sync.considered_days with the ledger (sync/save_considered_days.sql)
    source_snapshot pg_snapshot,
    considered_from timestamptz,
    considered_to   timestamptz,
    mapping_digest  text,
    PRIMARY KEY (dag_run_id, category, account_id)
);

-- Which Custom Member IDs exist in which org, as looked up during a run: the five validate-and-map
-- tasks share recipients, and each Id is asked of Salesforce once per run instead of once per task.
-- The report task empties the run's rows. UNLOGGED, like the staging table: a cache, rebuilt on loss.
CREATE UNLOGGED TABLE IF NOT EXISTS thrive_sync.member_matches (
    dag_run_id         text    NOT NULL,
    salesforce_conn_id text    NOT NULL,
    sf_id              text    NOT NULL,  -- 18-character Contact or Lead Id
    found              boolean NOT NULL,
    target             text,              -- the record written to: sf_id, or what it became
    redirect           text,              -- converted | merged, when target is another record
    detail             text,              -- why there is none, when the org says more than "not there"
    PRIMARY KEY (dag_run_id, salesforce_conn_id, sf_id)
);
ALTER TABLE thrive_sync.member_matches ADD COLUMN IF NOT EXISTS target text;
ALTER TABLE thrive_sync.member_matches ADD COLUMN IF NOT EXISTS redirect text;
ALTER TABLE thrive_sync.member_matches ADD COLUMN IF NOT EXISTS detail text;

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

-- The event ledger (CONTRACT.md §4): one row per source event with its latest outcome, so that a run
-- knows what earlier runs did. It decides what a run considers (extract/stage.sql): late rows, rows
-- whose content changed, failures that can heal; and what it leaves alone: rows written with the
-- same content. Written only from what Salesforce confirmed, in the transaction that saves the
-- run's counts (sync/save_ledger.sql). Partitioned by the event's day (UTC) so that a run reads only
-- the partitions of the days it considers, and old days go as whole partitions (retention:
-- thrive_sync.drop_ledger_partitions). PostgreSQL wants the partition key in every unique key of a
-- partitioned table, so occurred_at is part of the key: an event is found under its own day.
CREATE TABLE IF NOT EXISTS thrive_sync.event_ledger (
    account_id       text        NOT NULL,
    category         text        NOT NULL,
    event_id         bigint      NOT NULL,
    occurred_at      timestamptz NOT NULL,
    status           text        NOT NULL,  -- written | failed | skipped | deferred | purged (retention)
    reason_code      text,                  -- failed / deferred: the reason code; skipped: the gate
    error_code       text,                  -- REJECTED: the org's error code (some heal: a locked row)
    content_hash     text        NOT NULL,  -- SHA-256 (hex) of what the record is made of (stage.sql)
    first_dag_run_id text        NOT NULL,
    last_dag_run_id  text        NOT NULL,
    attempts         integer     NOT NULL,  -- runs that sent or tried to send it
    last_attempt_at  timestamptz NOT NULL,
    written_at       timestamptz,           -- when Salesforce last confirmed it
    custom_member_id text,                  -- the recipient's member Id when it was last tried
    PRIMARY KEY (account_id, category, event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);

-- "What happened to this member": the tracking-log page looks the ledger up by member Id.
CREATE INDEX IF NOT EXISTS event_ledger_member_idx ON thrive_sync.event_ledger (custom_member_id)
    WHERE custom_member_id IS NOT NULL;

-- Failures still open, by day and reason: the report's backlog and the tracking-log page's chart.
CREATE INDEX IF NOT EXISTS event_ledger_open_idx ON thrive_sync.event_ledger (occurred_at, reason_code)
    WHERE status IN ('failed', 'deferred');

-- Rows that can be tried again, by category and day: the extract looks the ledger's failures and
-- skipped rows up by key instead of reading the source days they are in (extract/stage.sql). Rows
-- whose record the retention DAG deleted (purged) never are: left out, or the index would hold
-- every old day's rows.
CREATE INDEX IF NOT EXISTS event_ledger_retry_idx ON thrive_sync.event_ledger (category, occurred_at)
    WHERE status NOT IN ('written', 'purged');
DROP INDEX IF EXISTS thrive_sync.event_ledger_unsettled_idx;  -- its predicate took purged rows in

-- Per category and UTC day: the source snapshot under which a run last looked at every row of the
-- day, saved with the ledger rows that run wrote (sync/save_ledger.sql), and the mapping it used.
-- A row whose event, recipient and message were all written by transactions visible in that
-- snapshot is the very row that run saw, so it has not changed since and the ledger already holds
-- what to do with it: the extract counts it without joining or digesting it. This is what makes a
-- rerun cost a scan instead of a digest of every row of three days (docs/design.md). Anything that
-- empties or deletes from the ledger forgets these days (trigger below).
CREATE TABLE IF NOT EXISTS thrive_sync.considered_days (
    category        text        NOT NULL,
    day             date        NOT NULL,  -- the UTC day of occurred_at, as the ledger's partitions
    source_snapshot pg_snapshot NOT NULL,
    mapping_digest  text        NOT NULL,
    dag_run_id      text        NOT NULL,
    saved_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (category, day)
);

CREATE OR REPLACE FUNCTION thrive_sync.forget_considered_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM thrive_sync.considered_days;
    RETURN NULL;
END $$;

-- A ledger emptied or cut (an org reset, a hand-made correction) no longer holds what the saved
-- snapshots promise: every row is looked at again on the next run.
CREATE OR REPLACE TRIGGER event_ledger_forget_considered_days
    AFTER DELETE OR TRUNCATE ON thrive_sync.event_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION thrive_sync.forget_considered_days();

-- One partition per UTC day from first_day to last_day (both included), made when missing; how many
-- were made. Serialised by an advisory lock: two runs may need the same day at once.
CREATE OR REPLACE FUNCTION thrive_sync.ensure_ledger_partitions(first_day date, last_day date)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    day date;
    made integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(7142305002);
    FOR day IN SELECT generate_series(first_day, last_day, interval '1 day')::date LOOP
        IF to_regclass(format('thrive_sync.event_ledger_%s', to_char(day, 'YYYYMMDD'))) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE thrive_sync.%I PARTITION OF thrive_sync.event_ledger FOR VALUES FROM (%L) TO (%L)',
                'event_ledger_' || to_char(day, 'YYYYMMDD'),
                (day::timestamp AT TIME ZONE 'UTC'), ((day + 1)::timestamp AT TIME ZONE 'UTC'));
            made := made + 1;
        END IF;
    END LOOP;
    RETURN made;
END $$;

-- Retention: drop the partitions of days before before_day; how many were dropped.
CREATE OR REPLACE FUNCTION thrive_sync.drop_ledger_partitions(before_day date)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    part text;
    dropped integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(7142305002);
    FOR part IN
        SELECT c.relname FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'thrive_sync.event_ledger'::regclass
          AND c.relname ~ '^event_ledger_\d{8}$'
          AND to_date(right(c.relname, 8), 'YYYYMMDD') < before_day
    LOOP
        EXECUTE format('DROP TABLE thrive_sync.%I', part);
        dropped := dropped + 1;
    END LOOP;
    DELETE FROM thrive_sync.considered_days WHERE day < before_day;
    RETURN dropped;
END $$;

-- Columns the ledger brought. sync_runs: unchanged rows were not sent (the ledger holds them as
-- written with the same content); late and retried say how many of the rows were late arrivals or
-- changes from the days before, and failures carried forward. staged_events: why the run considers
-- a row (new | late | retried | unchanged), and the digest of its content.
ALTER TABLE thrive_sync.sync_runs ADD COLUMN IF NOT EXISTS unchanged integer;
ALTER TABLE thrive_sync.sync_runs ADD COLUMN IF NOT EXISTS late integer;
ALTER TABLE thrive_sync.sync_runs ADD COLUMN IF NOT EXISTS retried integer;
ALTER TABLE thrive_sync.sync_runs ADD COLUMN IF NOT EXISTS healed integer;
-- Of the failed rows, those that failed before and were logged again without being sent (standing).
ALTER TABLE thrive_sync.sync_runs ADD COLUMN IF NOT EXISTS standing integer;
ALTER TABLE thrive_sync.staged_events ADD COLUMN IF NOT EXISTS consideration text;
ALTER TABLE thrive_sync.staged_events ADD COLUMN IF NOT EXISTS content_hash text;

-- Of the failed rows, those not sent because the org's daily allowance would have fallen below the
-- reserve kept for its other integrations (reason DEFERRED_QUOTA): not failures of the integration.
ALTER TABLE thrive_sync.sync_runs ADD COLUMN IF NOT EXISTS deferred integer;
-- Of the skipped rows, those of (code, subcode) pairs the mapping file leaves out.
ALTER TABLE thrive_sync.sync_runs ADD COLUMN IF NOT EXISTS left_out integer;
-- Of the written rows, those whose member Id names a converted Lead or a merged-away record.
ALTER TABLE thrive_sync.sync_runs ADD COLUMN IF NOT EXISTS converted integer;
ALTER TABLE thrive_sync.sync_runs ADD COLUMN IF NOT EXISTS merged integer;

-- Each org's daily allowances as a task found them before writing and left them after, and how
-- many of its rows the allowance had room for: the report's calls spent and left (core/budget.py).
CREATE TABLE IF NOT EXISTS thrive_sync.org_usage (
    dag_run_id         text        NOT NULL,
    category           text        NOT NULL,
    salesforce_conn_id text        NOT NULL,
    api_max            integer,
    api_before         integer,
    api_after          integer,
    batches_max        integer,
    batches_before     integer,
    batches_after      integer,
    storage_max        integer,    -- DataStorageMB: the org's data storage, and what was left of it
    storage_before     integer,
    storage_after      integer,
    rows_to_send       integer     NOT NULL,
    room               integer     NOT NULL,
    deferred           integer     NOT NULL,
    written            integer     NOT NULL DEFAULT 0,  -- records the task wrote to the org
    record_kb          real,       -- the storage an org counts a record at (connection extra record_storage_kb)
    storage_warn_share real,       -- how full the storage may be before the report warns (storage_warn_share)
    notes              text,
    saved_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dag_run_id, category, salesforce_conn_id)
);

-- What each task of the retention DAG (dags/thrive_tracking_retention.py) did in each org: the
-- records of its category older than the cutoff it found, deleted and failed to delete (with the
-- first failures), and the ledger rows it marked purged. A retried task replaces its row.
CREATE TABLE IF NOT EXISTS thrive_sync.retention_runs (
    dag_run_id         text        NOT NULL,
    category           text        NOT NULL,
    salesforce_conn_id text        NOT NULL,
    retention_days     integer     NOT NULL,
    cutoff             timestamptz NOT NULL,  -- records of activities before this were deleted
    dry_run            boolean     NOT NULL,  -- counted only: nothing deleted, nothing marked
    found              integer     NOT NULL,
    deleted            integer     NOT NULL,
    failed             integer     NOT NULL,
    ledger_marked      integer     NOT NULL,
    failures           text,                  -- the first few: "Id: error code: message"
    started_at         timestamptz NOT NULL,
    finished_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dag_run_id, category, salesforce_conn_id)
);

-- Fan-out per org (issue 16): each category's validate-and-map task runs as one mapped instance per
-- Salesforce connection its day's accounts use, and a large day of one org in shards side by side.
-- A row's shard: a hash of its Custom Member ID (15-character form), so one Contact's or Lead's rows
-- are in one shard and shards never wait for each other's parent locks. One shard: always 0.
CREATE OR REPLACE FUNCTION thrive_sync.shard_of(member_id text, shards integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN shards <= 1 THEN 0
                ELSE ((hashtext(left(btrim(coalesce(member_id, '')), 15))::bigint + 2147483648) % shards)::integer
           END
$$;

-- The parts of each run's category: one row per (org, shard), made by the extract (the list its
-- mapped instances expand over) and marked saved by the instance that saved its counts and ledger.
-- The report reads each org's state here; the event ledger's considered days are saved only by the
-- last part of a category to save (save_considered_days.sql), so an org that failed is looked at
-- again in full by the next runs.
CREATE TABLE IF NOT EXISTS thrive_sync.run_parts (
    dag_run_id         text        NOT NULL,
    category           text        NOT NULL,
    salesforce_conn_id text        NOT NULL,
    shard              integer     NOT NULL,
    shards             integer     NOT NULL,  -- every run of the same day keeps the first run's count
    events             integer     NOT NULL,  -- the org's rows considered (all shards)
    window_start       timestamptz NOT NULL,  -- the run's day
    created_at         timestamptz NOT NULL DEFAULT now(),
    extracted_at       timestamptz NOT NULL DEFAULT now(),  -- the category's latest extract of the run
    saved_at           timestamptz,           -- null: not (yet) saved by its instance
    PRIMARY KEY (dag_run_id, category, salesforce_conn_id, shard)
);
CREATE INDEX IF NOT EXISTS run_parts_day_idx ON thrive_sync.run_parts (category, window_start, salesforce_conn_id);

-- The connection each account's rows go to, as the extract found it: a part's accounts are read
-- here (sync/part_accounts.sql), so an account whose connection changes mid-run stays in one part.
ALTER TABLE thrive_sync.staged_tallies ADD COLUMN IF NOT EXISTS salesforce_conn_id text;

-- Each shard's counts per account, the columns of sync_runs: an account's rows of one org split into
-- shards are counted by each shard's instance, and thrive_sync.sync_runs holds their sum
-- (sync/save_counts.sql), one row per run, account and category as the contract fixes.
CREATE TABLE IF NOT EXISTS thrive_sync.sync_run_shards (
    dag_run_id   text    NOT NULL,
    account_id   text    NOT NULL,
    category     text    NOT NULL,
    shard        integer NOT NULL,
    window_start timestamptz,
    window_end   timestamptz,
    extracted    integer NOT NULL,
    written      integer NOT NULL,
    failed       integer NOT NULL,
    skipped      integer NOT NULL,
    dry_run      boolean,
    started_at   timestamptz,
    finished_at  timestamptz,
    skip_gate    text,
    truncated    integer NOT NULL,
    unchanged    integer NOT NULL,
    late         integer NOT NULL,
    retried      integer NOT NULL,
    healed       integer NOT NULL,
    standing     integer NOT NULL,
    deferred     integer NOT NULL,
    left_out     integer NOT NULL,
    converted    integer NOT NULL,
    merged       integer NOT NULL,
    PRIMARY KEY (dag_run_id, account_id, category, shard)
);

-- A refused login, remembered for the run: the org's other instances of the run fail at once
-- instead of each trying the same credentials (an org locks the user out after ten refusals in a
-- row). Keyed by a digest of the credentials, so a corrected connection is tried again.
CREATE TABLE IF NOT EXISTS thrive_sync.refused_logins (
    dag_run_id         text        NOT NULL,
    salesforce_conn_id text        NOT NULL,
    credentials_digest text        NOT NULL,
    message            text        NOT NULL,
    refused_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dag_run_id, salesforce_conn_id, credentials_digest)
);

-- Shards of one org write side by side: their Bulk jobs and allowance reads are told apart by shard.
ALTER TABLE thrive_sync.bulk_jobs ADD COLUMN IF NOT EXISTS shard integer NOT NULL DEFAULT 0;
ALTER TABLE thrive_sync.org_usage ADD COLUMN IF NOT EXISTS shard integer NOT NULL DEFAULT 0;
DO $$
BEGIN  -- databases made before the fan-out: the org's usage per shard
    IF (SELECT indnatts FROM pg_index WHERE indexrelid = 'thrive_sync.org_usage_pkey'::regclass) = 3 THEN
        ALTER TABLE thrive_sync.org_usage DROP CONSTRAINT org_usage_pkey,
            ADD PRIMARY KEY (dag_run_id, category, salesforce_conn_id, shard);
    END IF;
END $$;

-- Alerts that speak once (core/health.py): the org each account's counts of a run went to (its
-- part's connection), so the report can judge each org's failure share and each category's volume
-- against the org's days before; null in rows saved before this column came (left out of the history).
ALTER TABLE thrive_sync.sync_runs ADD COLUMN IF NOT EXISTS salesforce_conn_id text;
CREATE INDEX IF NOT EXISTS sync_runs_day_idx ON thrive_sync.sync_runs (window_start, category);

-- Each org's health as the latest report judged it, and what the alerts last said of it: an alert
-- goes only when the org is worse than that, or ok again after it was not. Reports change a row one
-- at a time (health/lock_org.sql), and never for a day older than the one it was judged on.
CREATE TABLE IF NOT EXISTS thrive_sync.org_health (
    salesforce_conn_id text        PRIMARY KEY,
    level              text        NOT NULL CHECK (level IN ('ok', 'warning', 'critical')),
    reasons            text,                  -- why, one per line (null when ok)
    since              timestamptz NOT NULL,  -- when the org came to this level
    dag_run_id         text        NOT NULL,  -- the run whose report judged it last
    window_start       timestamptz NOT NULL,  -- that run's day
    said               text        NOT NULL DEFAULT 'ok'  -- the level the last alert sent announced
                       CHECK (said IN ('ok', 'warning', 'critical')),
    said_at            timestamptz,           -- when that alert went
    checked_at         timestamptz NOT NULL DEFAULT now()
);
