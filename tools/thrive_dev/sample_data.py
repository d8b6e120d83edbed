"""Deterministic sample tracking data: accounts, recipients, messages and events, loaded with COPY.

Same seed and parameters, same rows, byte for byte: tests and benchmarks can name a day and know
what it holds. Every catalog pair appears; deliveries and opens dominate as in a real account;
a configurable share of events carries exactly one defect, each of a kind the contract's reason
codes or account gates name, and ``thrive_sample.expected_outcomes`` records for every event what
it was built to produce (written, failed with a reason, or skipped by a gate).

Good recipients carry real 18-character (and some 15-character) Contact or Lead Ids with valid
checksums; ``thrive_sample.crm_records`` lists the records a Salesforce org must hold for them to
match — the seam through which the local sandbox is seeded.

Everything streams: events are generated one at a time into a COPY per source table, and their
expected outcomes into a second COPY on a second connection, so memory does not grow with the
number of events. Recipient and message lists are held per account (thousands, not millions).
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

from thrive_dev.ids import compose_id15
from thrive_dev.schema import apply_schema
from thrive_sync.core.catalog import CATALOG, SOURCE_TABLE, Category, pairs_for, social_network
from thrive_sync.core.sfid import checksum

SAMPLE_SCHEMA_FILES = ("sample/schema.sql",)  # under tools/thrive_dev/sql/, applied after the package's DDL

# --- defects -------------------------------------------------------------------------------------
# name -> (outcome, reason). Recipient-level defects are carried by the recipient an event points
# at; the others by the event row itself; gates by the account.
WRITTEN = ("written", None)
DEFECTS: dict[str, tuple[str, str]] = {
    "member_id_null": ("failed", "MISSING_MEMBER_ID"),
    "member_id_blank": ("failed", "MISSING_MEMBER_ID"),
    "member_id_bad_length": ("failed", "MALFORMED_MEMBER_ID"),
    "member_id_bad_chars": ("failed", "MALFORMED_MEMBER_ID"),
    "member_id_bad_checksum": ("failed", "MALFORMED_MEMBER_ID"),
    "member_id_wrong_object": ("failed", "MALFORMED_MEMBER_ID"),
    "member_id_unmatched": ("failed", "UNMATCHED_MEMBER_ID"),
    "unknown_pair": ("failed", "UNKNOWN_ACTIVITY"),
    "wrong_category_pair": ("failed", "UNKNOWN_ACTIVITY"),
    "null_activity_code": ("failed", "INVALID_ROW"),
    "no_such_recipient": ("failed", "INVALID_ROW"),
    "no_message_id": ("failed", "INVALID_ROW"),
    "no_link_url": ("failed", "INVALID_ROW"),
    "no_survey_or_event_name": ("failed", "INVALID_ROW"),
    "no_social_handle": ("failed", "MISSING_SOCIAL_HANDLE"),
    "tracking_disabled": ("skipped", "tracking_disabled"),
    "marketing_automation_disabled": ("skipped", "marketing_automation_disabled"),
    "social_crm_disabled": ("skipped", "social_crm_disabled"),
}
RECIPIENT_DEFECTS = tuple(d for d in DEFECTS if d.startswith("member_id_"))
_COMMON_DEFECTS = (
    *RECIPIENT_DEFECTS,
    "unknown_pair",
    "wrong_category_pair",
    "null_activity_code",
    "no_such_recipient",
    "tracking_disabled",
)
DEFECTS_BY_CATEGORY: dict[Category, tuple[str, ...]] = {
    Category.MESSAGE_ACTIVITY: (*_COMMON_DEFECTS, "no_message_id", "no_link_url"),
    Category.RECIPIENT_DETAILS: _COMMON_DEFECTS,
    Category.MARKETING_AUTOMATION: (*_COMMON_DEFECTS, "marketing_automation_disabled"),
    Category.SOCIAL_CRM: (*_COMMON_DEFECTS, "no_social_handle", "social_crm_disabled"),
    Category.SURVEYS_EVENTS: (*_COMMON_DEFECTS, "no_survey_or_event_name"),
}
# Pairs in no section at all: near misses of real pairs, as a sloppy export would carry them.
UNKNOWN_PAIRS = (
    ("Opened", "Clicked"),
    ("opened", "Opened"),
    ("Sent", "Bounced"),
    ("Suppressed", "Detail unavailable"),
    ("Social", "LinkedInLike"),
    ("Sent ", "Delivered"),
)

# --- proportions ---------------------------------------------------------------------------------
CATEGORY_SHARE: dict[Category, float] = {
    Category.MESSAGE_ACTIVITY: 0.82,
    Category.RECIPIENT_DETAILS: 0.06,
    Category.MARKETING_AUTOMATION: 0.05,
    Category.SOCIAL_CRM: 0.04,
    Category.SURVEYS_EVENTS: 0.03,
}
# Relative weight of each pair within its category; pairs not named weigh 1.
PAIR_WEIGHT: dict[tuple[str, str], float] = {
    ("Sent", "Delivered"): 4200,
    ("Opened", "Opened"): 3000,
    ("LinkClicked", "Clicked"): 900,
    ("Sent", "SoftBounce"): 80,
    ("Sent", "HardBounce"): 50,
    ("Sent", "InProgress"): 40,
    ("SmsSent", "SMSSent"): 300,
    ("FaxSent", "FaxSuccessful"): 40,
    ("Unsubscribed", "Unsubscribed"): 30,
    ("Subscribed", "Subscribed"): 20,
    ("Suppressed", "ManualSuppress"): 5,
    ("WebsiteVisit", "WebsiteVisit"): 5,
    ("LandingPageSubmit", "LandingPageSubmit"): 2,
    ("Social", "FacebookLike"): 3,
    ("Social", "TwitterRetweet"): 2,
    ("Event Signup", "Event Signup"): 3,
    ("Survey Submit", "Survey Submit"): 2,
}
CHANNEL_OF_CODE = {"Sent": "email", "Opened": "email", "LinkClicked": "email", "FaxSent": "fax", "SmsSent": "sms"}
# Recipient-details subcodes that a message triggers (the others are account-level actions).
MESSAGE_TRIGGERED = {"Unsubscribed", "ManageSubscription", "Unsub From All Link", "SpamComplaintSuppress"}
EVENT_NAMES = (
    "Annual Conference 2027",
    'Leadership Summit: "Lead, Serve, Grow"',
    "Chapter Meetup — Lyon",
    "Webinar: Advocacy 101",
    "Gala Dinner & Awards",
)
SURVEY_NAMES = (
    "Member Satisfaction Survey 2026",
    "Annual Needs Assessment",
    "Post-event feedback, Q4",
    "Salary Survey (Europe)",
    "Volunteer interest",
)
FIRST_NAMES = ("Ada", "Bea", "Carlos", "Dana", "Élodie", "Femi", "Grace", "Hiro", "Ines", "Jonas", "Kai", "Lena")
LAST_NAMES = ("Okafor", "Nguyen", "Schmidt", "García", "O'Brien", "Kowalski", "Rossi", "Tanaka", "Dubois", "Smith")

# The account profiles used when defects are on: the last three accounts each close one gate.
GATED_PROFILES = {
    "tracking_disabled": {"tracking_enabled": False},
    "marketing_automation_disabled": {"marketing_automation_enabled": False},
    "social_crm_disabled": {"social_crm_enabled": False},
}


class SampleDataError(RuntimeError):
    """Parameters or a target database the generator cannot work with, worded as what to do."""


@dataclass(frozen=True)
class SampleConfig:
    """What to generate. Same config, same rows."""

    start: date
    days: int = 1
    events: int = 10_000
    accounts: int = 4
    recipients_per_account: int = 500
    messages_per_account: int = 20
    bad_share: float = 0.05
    seed: int = 20261126

    def __post_init__(self) -> None:
        if self.days < 1:
            raise SampleDataError("days must be at least 1")
        if not 0 <= self.bad_share <= 1:
            raise SampleDataError(f"bad_share must be between 0 and 1, got {self.bad_share}")
        if self.bad_share and self.accounts < 4:
            raise SampleDataError("with bad_share > 0 at least 4 accounts are needed (3 carry the account gates)")
        if self.accounts < 1 or self.recipients_per_account < 20 or self.messages_per_account < 3:
            raise SampleDataError("need accounts >= 1, recipients_per_account >= 20, messages_per_account >= 3")
        if self.events < 0:
            raise SampleDataError("events must be >= 0")


@dataclass
class _Account:
    account_id: str
    gate: str | None  # the gate this account closes, if any
    pools: dict[str, list[int]] = field(default_factory=dict)  # pool name -> recipient ids
    messages: dict[str, list[int]] = field(default_factory=dict)  # channel -> message ids

    def allows(self, category: Category) -> bool:
        """Whether this account's events of ``category`` pass every gate."""
        return (
            self.gate is None
            or (self.gate == "marketing_automation_disabled" and category != Category.MARKETING_AUTOMATION)
            or (self.gate == "social_crm_disabled" and category != Category.SOCIAL_CRM)
        )


@dataclass
class LoadStats:
    """What a load wrote, per table."""

    rows: dict[str, int] = field(default_factory=dict)


class SampleGenerator:
    """Generates one :class:`SampleConfig`'s rows; iterate its methods, or :func:`load` them."""

    def __init__(self, config: SampleConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.window_start = datetime(config.start.year, config.start.month, config.start.day, tzinfo=UTC)
        self.span_us = config.days * 86_400 * 1_000_000
        self.accounts = self._make_accounts()
        self._member_seq = itertools.count(1)
        self._event_seq = itertools.count(1)

    # --- accounts, recipients, messages ---------------------------------------------------------
    def _make_accounts(self) -> list[_Account]:
        n = self.config.accounts
        gates: list[str | None] = [None] * n
        if self.config.bad_share:
            gates[n - 3 :] = list(GATED_PROFILES)
        return [_Account(f"acct-{i + 1:03d}", gate) for i, gate in enumerate(gates)]

    def account_rows(self) -> Iterator[tuple]:
        for i, acct in enumerate(self.accounts):
            flags = {"tracking_enabled": True, "marketing_automation_enabled": True, "social_crm_enabled": True}
            flags.update(GATED_PROFILES.get(acct.gate or "", {}))
            yield (
                acct.account_id,
                f"Sample Association {i + 1}",
                flags["tracking_enabled"],
                flags["marketing_automation_enabled"],
                flags["social_crm_enabled"],
                "salesforce_default",
            )

    def _member_id(self, kind: str) -> tuple[str | None, tuple | None]:
        """A recipient's Custom Member ID for ``kind``, and the CRM record it needs (good ones only)."""
        n = next(self._member_seq)
        rng = self.rng
        if kind == "good":
            is_lead = rng.random() < 0.3
            id15 = compose_id15("00Q" if is_lead else "003", "5g", n)
            id18 = id15 + checksum(id15)
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            email = f"{first.lower()}.{n}@members.example.org"
            record = (id18, "Lead" if is_lead else "Contact", first, last, email, "Prospect Org" if is_lead else None)
            return (id15 if rng.random() < 0.1 else id18), record
        id15 = compose_id15("003", "9z", n)  # pod 9z never holds a seeded record
        return {
            "member_id_null": None,
            "member_id_blank": rng.choice(("", "   ")),
            "member_id_bad_length": rng.choice((id15[:14], id15 + checksum(id15) + "X")),
            "member_id_bad_chars": id15[:7] + rng.choice(("-", "_", " ", "é")) + id15[8:],
            "member_id_bad_checksum": id15 + ("AAA" if checksum(id15) != "AAA" else "AAB"),
            "member_id_wrong_object": (acct := compose_id15("001", "5g", n)) + checksum(acct),
            "member_id_unmatched": id15 + checksum(id15),
        }[kind], None

    def recipients(self) -> Iterator[tuple[tuple, tuple | None]]:
        """``(recipient row, CRM record or None)`` for every account; fills the accounts' pools."""
        per_account = self.config.recipients_per_account
        defect_each = max(1, per_account // 50) if self.config.bad_share else 0
        for acct in self.accounts:
            kinds = [k for k in RECIPIENT_DEFECTS for _ in range(defect_each)]
            kinds += ["good"] * (per_account - len(kinds))
            self.rng.shuffle(kinds)
            acct.pools = {name: [] for name in ("good", "fb", "tw", "no_fb", "no_tw", *RECIPIENT_DEFECTS)}
            good_seen = 0
            for recipient_id, kind in enumerate(kinds, start=1):
                member_id, record = self._member_id(kind)
                fb = tw = False
                if kind == "good":
                    # A fixed cycle, so that every pool below is filled from four good recipients on.
                    fb, tw = [(True, True), (True, False), (False, True), (False, False)][good_seen % 4]
                    good_seen += 1
                    acct.pools["good"].append(recipient_id)
                    acct.pools["fb" if fb else "no_fb"].append(recipient_id)
                    acct.pools["tw" if tw else "no_tw"].append(recipient_id)
                else:
                    acct.pools[kind].append(recipient_id)
                yield (
                    (
                        acct.account_id,
                        recipient_id,
                        f"r{recipient_id}.{acct.account_id}@mail.example.org",
                        f"+1555{recipient_id:07d}",
                        member_id,
                        f"fb.member{recipient_id}" if fb else None,
                        f"@member{recipient_id}" if tw else None,
                    ),
                    record,
                )

    def messages(self) -> Iterator[tuple]:
        start = self.window_start - timedelta(days=2)
        for acct in self.accounts:
            acct.messages = {"email": [], "sms": [], "fax": []}
            for message_id in range(1, self.config.messages_per_account + 1):
                channel = (
                    ("email", "sms", "fax")[message_id - 1]
                    if message_id <= 3
                    else self.rng.choices(("email", "sms", "fax"), weights=(80, 15, 5))[0]
                )
                acct.messages[channel].append(message_id)
                sent_at = start + timedelta(seconds=self.rng.randrange((self.config.days + 2) * 86_400))
                yield (acct.account_id, message_id, f"{channel.upper()} campaign #{message_id}", channel, sent_at)

    # --- events ---------------------------------------------------------------------------------
    def category_counts(self) -> dict[Category, int]:
        """How many events each category gets: its share, at least enough to cover its pairs."""
        counts = {c: int(self.config.events * share) for c, share in CATEGORY_SHARE.items()}
        counts[Category.MESSAGE_ACTIVITY] += self.config.events - sum(counts.values())
        return counts

    def events(self, category: Category) -> Iterator[tuple[tuple, str, str | None, str | None]]:
        """``(source row, outcome, reason, defect)`` for each of ``category``'s events.

        The first events of a category cover its pairs (one each, good, at midnight of a day: a
        window's first instant) and, when defects are on, each of its defects once; the rest are
        drawn by weight.
        """
        rng = self.rng
        pairs = sorted(pairs_for(category), key=lambda p: (p[0], p[1]))
        cum = list(itertools.accumulate(PAIR_WEIGHT.get(p, 1.0) for p in pairs))
        defects = DEFECTS_BY_CATEGORY[category] if self.config.bad_share else ()
        open_accounts = [a for a in self.accounts if a.allows(category)]
        cover = [(p, None) for p in pairs] + [(None, d) for d in defects]
        for i in range(self.category_counts()[category]):
            at_midnight = False
            if i < len(cover):
                pair, defect = cover[i]
                at_midnight = pair is not None
            else:
                pair, defect = None, None
                if defects and rng.random() < self.config.bad_share:
                    defect = defects[int(rng.random() * len(defects))]
            if pair is None:
                pair = pairs[bisect.bisect(cum, rng.random() * cum[-1])]
            yield self._event(category, pair, defect, open_accounts, at_midnight)

    def _event(
        self,
        category: Category,
        pair: tuple[str, str],
        defect: str | None,
        open_accounts: list[_Account],
        at_midnight: bool,
    ) -> tuple[tuple, str, str | None, str | None]:
        rng = self.rng
        if defect in GATED_PROFILES:
            acct = next(a for a in self.accounts if a.gate == defect)
        else:
            acct = open_accounts[int(rng.random() * len(open_accounts))]
        if defect == "no_link_url":
            pair = ("LinkClicked", "Clicked")
        code, subcode = pair
        pool = "good"
        if category == Category.SOCIAL_CRM:
            network = "fb" if social_network(subcode) == "facebook" else "tw"
            pool = f"no_{network}" if defect == "no_social_handle" else network
        if defect in RECIPIENT_DEFECTS:
            pool = defect
        members = acct.pools[pool]
        recipient_id = members[int(rng.random() * len(members))]
        if defect == "no_such_recipient":
            recipient_id = self.config.recipients_per_account + 1 + int(rng.random() * 1000)
        if defect == "unknown_pair":
            code, subcode = UNKNOWN_PAIRS[int(rng.random() * len(UNKNOWN_PAIRS))]
        elif defect == "wrong_category_pair":
            others = [a for a in CATALOG if a.category != category]
            other = others[int(rng.random() * len(others))]
            code, subcode = other.code, other.subcode
        elif defect == "null_activity_code":
            code = None
        if at_midnight:
            day = int(rng.random() * self.config.days)
            occurred_at = self.window_start + timedelta(days=day)
        else:
            occurred_at = self.window_start + timedelta(microseconds=int(rng.random() * self.span_us))
        head = (acct.account_id, next(self._event_seq), recipient_id, code, subcode, occurred_at)
        row = head + self._details(category, acct, pair, defect)
        outcome, reason = DEFECTS[defect] if defect else WRITTEN
        return row, outcome, reason, defect

    def _details(self, category: Category, acct: _Account, pair: tuple[str, str], defect: str | None) -> tuple:
        """The category's own columns (see CONTRACT.md §3)."""
        rng = self.rng
        code, subcode = pair
        if category == Category.MESSAGE_ACTIVITY:
            channel_messages = acct.messages[CHANNEL_OF_CODE[code]]
            message_id = channel_messages[int(rng.random() * len(channel_messages))]
            link = f"https://www.example.org/news/{message_id}?utm_source=thrive&l={int(rng.random() * 9)}"
            return (
                None if defect == "no_message_id" else message_id,
                link if code == "LinkClicked" and defect != "no_link_url" else None,
            )
        if category == Category.RECIPIENT_DETAILS:
            emails = acct.messages["email"]
            message_id = emails[int(rng.random() * len(emails))] if subcode in MESSAGE_TRIGGERED else None
            source = None
            if subcode.endswith("AcrossAccts"):
                others = [a.account_id for a in self.accounts if a is not acct] or [acct.account_id]
                source = others[int(rng.random() * len(others))]
            return message_id, source
        if category == Category.MARKETING_AUTOMATION:
            page = f"https://www.example.org/{('join', 'renew', 'events', 'donate')[int(rng.random() * 4)]}"
            goal = f"Goal: {('Join', 'Renew', 'Register', 'Donate')[int(rng.random() * 4)]}"
            return (page if code != "GoalSuccess" else None, goal if code == "GoalSuccess" else None)
        if category == Category.SOCIAL_CRM:
            n = int(rng.random() * 100_000)
            url = (
                f"https://www.facebook.com/sampleassociation/posts/{n}"
                if social_network(subcode) == "facebook"
                else f"https://twitter.com/sampleassoc/status/{n}"
            )
            return (url,)
        names = EVENT_NAMES if code == "Event Signup" else SURVEY_NAMES
        return (None if defect == "no_survey_or_event_name" else names[int(rng.random() * len(names))],)


# --- loading -------------------------------------------------------------------------------------
_SOURCE_TABLES = ("accounts", "recipients", "messages", *SOURCE_TABLE.values())


def _guard_against_real_data(conn: psycopg.Connection) -> None:
    """Refuse to truncate ``thrive.*`` unless it is empty or was loaded by this generator."""
    generated = conn.execute("SELECT count(*) FROM thrive_sample.generations").fetchone()[0]
    if generated:
        return
    for table in _SOURCE_TABLES:
        if conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(_thrive(table))).fetchone()[0]:
            raise SampleDataError(
                f"thrive.{table} holds rows the sample generator did not load: it replaces the thrive "
                "tables, so it will not run against a real export. Point THRIVE_DB_URI at another database"
            )


def load(uri: str, config: SampleConfig) -> LoadStats:
    """Replace the ``thrive`` tables' contents with ``config``'s sample data, in one transaction."""
    gen = SampleGenerator(config)
    stats = LoadStats()
    with psycopg.connect(uri) as conn, psycopg.connect(uri) as expect_conn:
        apply_schema(conn, dev_files=SAMPLE_SCHEMA_FILES)
        with conn.transaction(), expect_conn.transaction():
            _guard_against_real_data(conn)
            conn.execute(
                sql.SQL("TRUNCATE {}, thrive_sample.generations").format(
                    sql.SQL(", ").join(_thrive(t) for t in _SOURCE_TABLES)
                )
            )
            # Tables COPY'd on the second connection are truncated there, or its COPY would wait
            # on the first connection's lock.
            expect_conn.execute("TRUNCATE thrive_sample.expected_outcomes, thrive_sample.crm_records")
            with conn.cursor() as cur:
                stats.rows["thrive.accounts"] = _copy(cur, "accounts", gen.account_rows())
                with (
                    expect_conn.cursor() as rec_cur,
                    rec_cur.copy("COPY thrive_sample.crm_records FROM STDIN") as crm_copy,
                ):
                    stats.rows["thrive.recipients"] = _copy(
                        cur, "recipients", _tee_records(gen.recipients(), crm_copy, stats)
                    )
                stats.rows["thrive.messages"] = _copy(cur, "messages", gen.messages())
                with (
                    expect_conn.cursor() as exp_cur,
                    exp_cur.copy("COPY thrive_sample.expected_outcomes FROM STDIN") as expected,
                ):
                    for category, table in SOURCE_TABLE.items():
                        stats.rows[f"thrive.{table}"] = _copy(
                            cur, table, _tee_expected(category, gen.events(category), expected)
                        )
                cur.execute(
                    "INSERT INTO thrive_sample.generations (params, events) VALUES (%s, %s)",
                    (json.dumps(asdict(config), default=str), config.events),
                )
        for table in _SOURCE_TABLES:
            conn.execute(sql.SQL("ANALYZE {}").format(_thrive(table)))
    return stats


def _thrive(table: str) -> sql.Composable:
    return sql.Identifier("thrive", table)


def _copy(cur: psycopg.Cursor, table: str, rows: Iterator[tuple]) -> int:
    """COPY ``rows`` into ``thrive.<table>``; return how many."""
    n = 0
    with cur.copy(sql.SQL("COPY {} FROM STDIN").format(_thrive(table))) as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def _tee_records(
    rows: Iterator[tuple[tuple, tuple | None]], crm_copy: psycopg.Copy, stats: LoadStats
) -> Iterator[tuple]:
    crm = 0
    for row, record in rows:
        if record is not None:
            crm_copy.write_row(record)
            crm += 1
        yield row
    stats.rows["thrive_sample.crm_records"] = crm


def _tee_expected(
    category: Category,
    events: Iterator[tuple[tuple, str, str | None, str | None]],
    expected: psycopg.Copy,
) -> Iterator[tuple]:
    """Yield each event's source row, writing its expected outcome on the way."""
    for row, outcome, reason, defect in events:
        expected.write_row((row[0], category.value, row[1], outcome, reason, defect))
        yield row
