"""The sample generator: deterministic, covering, realistic, honest about what each row should do."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest
from psycopg import sql

from thrive_dev.sample_data import (
    DEFECTS,
    DEFECTS_BY_CATEGORY,
    SampleConfig,
    SampleDataError,
    load,
)
from thrive_sync.core.catalog import CATALOG, SOURCE_TABLE, Category, pairs_for
from thrive_sync.core.sfid import id_problem, member_id_problem, to_18

DAY = date(2026, 11, 26)
CONFIG = SampleConfig(start=DAY, events=4_000, recipients_per_account=100, seed=7)
TABLES = [("thrive", t) for t in ("accounts", "recipients", "messages", *SOURCE_TABLE.values())] + [
    ("thrive_sample", "crm_records"),
    ("thrive_sample", "expected_outcomes"),
]


def table_digests(uri: str) -> dict[str, str]:
    with psycopg.connect(uri) as conn:
        return {
            f"{schema}.{table}": conn.execute(
                sql.SQL("SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {} t").format(
                    sql.Identifier(schema, table)
                )
            ).fetchone()[0]
            for schema, table in TABLES
        }


@pytest.fixture
def loaded(fresh_db) -> str:
    load(fresh_db, CONFIG)
    return fresh_db


def test_same_seed_same_rows_other_seed_other_rows(loaded, fresh_db, pg_server):
    first = table_digests(loaded)
    load(fresh_db, CONFIG)
    assert table_digests(fresh_db) == first
    load(fresh_db, SampleConfig(start=DAY, events=4_000, recipients_per_account=100, seed=8))
    other = table_digests(fresh_db)
    assert other["thrive.message_activity"] != first["thrive.message_activity"]


def test_reload_replaces_instead_of_adding(loaded):
    load(loaded, CONFIG)
    with psycopg.connect(loaded) as conn:
        events = sum(
            conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("thrive", t))).fetchone()[0]
            for t in SOURCE_TABLE.values()
        )
        expected = conn.execute("SELECT count(*) FROM thrive_sample.expected_outcomes").fetchone()[0]
    assert events == expected == CONFIG.events


def test_every_catalog_pair_is_covered_by_a_good_event(loaded):
    with psycopg.connect(loaded) as conn:
        seen = set()
        for category, table in SOURCE_TABLE.items():
            rows = conn.execute(
                sql.SQL(
                    "SELECT DISTINCT e.activity_code, e.activity_subcode FROM {} e"
                    " JOIN thrive_sample.expected_outcomes x"
                    "   ON x.account_id = e.account_id AND x.event_id = e.event_id AND x.category = %s"
                    " WHERE x.outcome = 'written'"
                ).format(sql.Identifier("thrive", table)),
                (category.value,),
            ).fetchall()
            seen |= {(category, code, subcode) for code, subcode in rows}
    assert seen == {(a.category, a.code, a.subcode) for a in CATALOG}


def test_every_defect_of_every_category_is_present(loaded):
    with psycopg.connect(loaded) as conn:
        present = set(
            conn.execute(
                "SELECT DISTINCT category, defect FROM thrive_sample.expected_outcomes WHERE defect IS NOT NULL"
            ).fetchall()
        )
        outcomes = set(
            conn.execute(
                "SELECT DISTINCT outcome, reason FROM thrive_sample.expected_outcomes WHERE defect IS NOT NULL"
            ).fetchall()
        )
    assert present == {(c.value, d) for c, defects in DEFECTS_BY_CATEGORY.items() for d in defects}
    assert outcomes == set(DEFECTS.values())


def test_proportions_are_realistic(fresh_db):
    config = SampleConfig(start=DAY, events=50_000, recipients_per_account=200, bad_share=0.05, seed=11)
    load(fresh_db, config)
    with psycopg.connect(fresh_db) as conn:
        total = {
            c: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("thrive", t))).fetchone()[0]
            for c, t in SOURCE_TABLE.items()
        }
        delivered_or_opened = conn.execute(
            "SELECT count(*) FROM thrive.message_activity WHERE (activity_code, activity_subcode)"
            " IN (('Sent', 'Delivered'), ('Opened', 'Opened'))"
        ).fetchone()[0]
        bad = conn.execute("SELECT count(*) FROM thrive_sample.expected_outcomes WHERE defect IS NOT NULL").fetchone()[
            0
        ]
    assert sum(total.values()) == 50_000
    assert total[Category.MESSAGE_ACTIVITY] > 0.75 * 50_000
    assert delivered_or_opened > 0.6 * 50_000  # deliveries and opens dominate
    assert 0.04 < bad / 50_000 < 0.06  # the configured 5%, give or take sampling


def test_no_bad_rows_when_share_is_zero(fresh_db):
    load(fresh_db, SampleConfig(start=DAY, events=2_000, accounts=2, recipients_per_account=50, bad_share=0))
    with psycopg.connect(fresh_db) as conn:
        outcomes = conn.execute("SELECT DISTINCT outcome FROM thrive_sample.expected_outcomes").fetchall()
        blank = conn.execute(
            "SELECT count(*) FROM thrive.recipients WHERE coalesce(trim(custom_member_id), '') = ''"
        ).fetchone()[0]
    assert outcomes == [("written",)]
    assert blank == 0


def test_member_ids_match_what_they_were_built_for(loaded):
    """Good recipients carry valid Contact/Lead Ids that the CRM seed holds; defective ones do not."""
    with psycopg.connect(loaded) as conn:
        crm = {row[0]: row[1] for row in conn.execute("SELECT sf_id, sobject FROM thrive_sample.crm_records")}
        rows = conn.execute(
            "SELECT DISTINCT r.custom_member_id, x.defect FROM thrive.message_activity e"
            " JOIN thrive.recipients r USING (account_id, recipient_id)"
            " JOIN thrive_sample.expected_outcomes x"
            "   ON x.account_id = e.account_id AND x.event_id = e.event_id AND x.category = 'message_activity'"
        ).fetchall()
    assert crm and all(len(i) == 18 and id_problem(i) is None for i in crm)
    assert {crm[i][:1] for i in crm} == {"C", "L"}  # Contacts and Leads both
    assert all(crm[i] == ("Lead" if i.startswith("00Q") else "Contact") for i in crm)
    kinds: dict[str | None, set[bool]] = {}
    for member_id, defect in rows:
        if defect in (
            None,
            "no_message_id",
            "no_link_url",
            "unknown_pair",
            "wrong_category_pair",
            "null_activity_code",
            "tracking_disabled",
        ):
            assert member_id_problem(member_id) is None and to_18(member_id) in crm
            kinds.setdefault(None, set()).add(len(member_id) == 15)
        elif defect in ("member_id_null", "member_id_blank"):
            assert member_id is None or member_id.strip() == ""
        elif defect == "member_id_unmatched":
            assert member_id_problem(member_id) is None and to_18(member_id) not in crm
        else:
            assert member_id_problem(member_id) is not None, (defect, member_id)
    assert kinds[None] == {True, False}  # both the 15- and the 18-character forms occur


def test_window_start_has_events_and_all_events_are_inside_the_range(loaded):
    with psycopg.connect(loaded) as conn:
        at_start, outside = conn.execute(
            "SELECT count(*) FILTER (WHERE occurred_at = '2026-11-26T00:00:00Z'),"
            " count(*) FILTER (WHERE occurred_at < '2026-11-26T00:00:00Z' OR occurred_at >= '2026-11-27T00:00:00Z')"
            " FROM thrive.message_activity"
        ).fetchone()
    assert at_start >= 1 and outside == 0


def test_refuses_to_overwrite_a_real_export(fresh_db):
    with psycopg.connect(fresh_db) as conn:
        from thrive_dev.schema import apply_schema

        apply_schema(conn)
        conn.execute("INSERT INTO thrive.accounts (account_id) VALUES ('real-customer')")
        conn.commit()
    with pytest.raises(SampleDataError, match="did not load"):
        load(fresh_db, CONFIG)
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT account_id FROM thrive.accounts").fetchall() == [("real-customer",)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bad_share": 0.1, "accounts": 3}, "at least 4 accounts"),
        ({"bad_share": 1.5}, "between 0 and 1"),
        ({"recipients_per_account": 5}, "recipients_per_account >= 20"),
        ({"days": 0}, "days must be at least 1"),
    ],
)
def test_bad_parameters_say_what_to_fix(kwargs, message):
    with pytest.raises(SampleDataError, match=message):
        SampleConfig(start=DAY, **kwargs)


def test_each_row_carries_exactly_the_defect_it_is_labelled_with(loaded):
    """Read every event back with its recipient and account, and check the label against the row."""
    all_pairs = {(a.code, a.subcode) for a in CATALOG}
    detail_column = {Category.MESSAGE_ACTIVITY: "message_id", Category.SURVEYS_EVENTS: "survey_or_event_name"}
    checked = 0
    with psycopg.connect(loaded) as conn:
        crm = {row[0] for row in conn.execute("SELECT sf_id FROM thrive_sample.crm_records")}
        for category, table in SOURCE_TABLE.items():
            extra = {
                Category.MESSAGE_ACTIVITY: "e.message_id, e.link_url",
                Category.SURVEYS_EVENTS: "e.survey_or_event_name, NULL",
            }.get(category, "NULL, NULL")
            query = sql.SQL(
                "SELECT x.defect, e.activity_code, e.activity_subcode, r.recipient_id IS NOT NULL,"
                " r.custom_member_id, r.facebook_handle, r.twitter_handle,"
                " a.tracking_enabled, a.marketing_automation_enabled, a.social_crm_enabled, {extra}"
                " FROM {table} e JOIN thrive.accounts a USING (account_id)"
                " LEFT JOIN thrive.recipients r USING (account_id, recipient_id)"
                " JOIN thrive_sample.expected_outcomes x"
                "   ON x.account_id = e.account_id AND x.event_id = e.event_id AND x.category = %s"
            ).format(extra=sql.SQL(extra), table=sql.Identifier("thrive", table))
            for (
                defect,
                code,
                subcode,
                has_recipient,
                member_id,
                fb,
                tw,
                tracking,
                ma,
                social,
                detail,
                link,
            ) in conn.execute(query, (category.value,)):
                in_category = (code, subcode) in pairs_for(category)
                member_ok = bool(member_id) and member_id_problem(member_id) is None and to_18(member_id) in crm
                handle = fb if (subcode or "").startswith("Facebook") else tw
                gates_open = (
                    tracking
                    and not (category == Category.MARKETING_AUTOMATION and not ma)
                    and not (category == Category.SOCIAL_CRM and not social)
                )
                expectation = {
                    None: in_category and has_recipient and member_ok and gates_open,
                    "unknown_pair": (code, subcode) not in all_pairs,
                    "wrong_category_pair": (code, subcode) in all_pairs and not in_category,
                    "null_activity_code": code is None,
                    "no_such_recipient": not has_recipient,
                    "no_message_id": detail is None,
                    "no_link_url": (code, subcode) == ("LinkClicked", "Clicked") and link is None,
                    "no_survey_or_event_name": detail is None,
                    "no_social_handle": member_ok and not handle,
                    "tracking_disabled": not tracking,
                    "marketing_automation_disabled": tracking and not ma,
                    "social_crm_disabled": tracking and not social,
                    "member_id_unmatched": not member_ok and member_id_problem(member_id or "") is None,
                }.get(defect, not member_ok)  # the other member_id_* defects
                assert expectation, (category, defect, code, subcode, member_id)
                if defect is None and category == Category.SOCIAL_CRM:
                    assert handle
                if defect is None and category in detail_column:
                    assert detail is not None
                if defect is None and (code, subcode) == ("LinkClicked", "Clicked"):
                    assert link
                checked += 1
    assert checked == CONFIG.events
