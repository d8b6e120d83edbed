-- Sample-data bookkeeping, written only by the sample generator (tools/thrive_dev/sample_data.py).
-- It never holds production data: it records what was generated so that the generator refuses to
-- overwrite a real export, which Salesforce records the local sandbox must be seeded with, and
-- what outcome each generated event was built to produce. Idempotent.
CREATE SCHEMA IF NOT EXISTS thrive_sample;

-- One row per generator run that loaded the thrive.* tables.
CREATE TABLE IF NOT EXISTS thrive_sample.generations (
    generated_at timestamptz NOT NULL DEFAULT now(),
    params       jsonb       NOT NULL,
    events       bigint      NOT NULL
);

-- The Contacts and Leads a Salesforce org must hold for the good recipients to match: the seam
-- through which the local sandbox (or a developer's scratch org) is seeded.
CREATE TABLE IF NOT EXISTS thrive_sample.crm_records (
    sf_id      text PRIMARY KEY,  -- 18-char Id, as Salesforce would return it
    sobject    text NOT NULL,     -- Contact | Lead
    first_name text,
    last_name  text NOT NULL,
    email      text,
    company    text               -- required for Leads
);

-- What each generated event was built to produce: written, failed with a reason code, or
-- skipped by an account gate. Tests compare a run's outcome with it, row for row.
CREATE TABLE IF NOT EXISTS thrive_sample.expected_outcomes (
    account_id text   NOT NULL,
    category   text   NOT NULL,
    event_id   bigint NOT NULL,
    outcome    text   NOT NULL,  -- written | failed | skipped
    reason     text,             -- reason code (failed) or gate name (skipped)
    defect     text,             -- the defect the generator built in, for reading failures
    PRIMARY KEY (account_id, category, event_id)
);
