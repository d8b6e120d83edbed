"""Logins as Salesforce does them, sessions that expire, and refusals no retry can change.

Against the sandbox with the real simple_salesforce client, through the provider's SalesforceHook
(which the package's hook extends): SOAP login with password and security token, the OAuth 2.0
JWT bearer and username-password grants, sessions that expire, lockouts; then the package: refused
credentials and a spent daily limit end the task at once, and an expired session mid-run is logged
in again and the run completes, for a password and a JWT connection.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import jwt
import psycopg
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce import Salesforce, SalesforceLogin
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceExpiredSession

from dag_runs import airflow_run_id, dags_test, latest_run_id, task_states
from thrive_sync.core.mapping import load_mapping
from thrive_sync.errors import ConfigurationError, CredentialsRefused, DailyLimitReached, LoginRefused
from thrive_sync.hooks.salesforce import RetryBudget, SalesforceApiHook
from thrive_sync.preflight import check_org
from thrive_sync.settings import DEFAULT_MAPPING
from thrive_sync.sf_writer import SalesforceWriter

TA, EXT = "Thrive_Activity__c", "Thrive_Event_Id__c"
FAST = RetryBudget(attempts=6, initial_seconds=0.02, max_seconds=0.2, budget_seconds=60, record_rounds=4)
INVALID_LOGIN = "Invalid username, password, security token; or user locked out."
SYNC_TASKS = 5  # one validate-and-map task per category, each logs in once


def conn_with(conn_json: str, **changes: object) -> dict:
    """A connection (dict) with top-level fields or extras changed; ``None`` removes one."""
    conn = json.loads(conn_json)
    for key, value in changes.items():
        where = conn if key in ("login", "password") else conn["extra"]
        if value is None:
            where.pop(key, None)
        else:
            where[key] = value
    conn["extra"]["http_backoff"] = 0.01
    return conn


def hook_for(monkeypatch, conn: dict, conn_id: str = "sf_login") -> SalesforceApiHook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return SalesforceApiHook(conn_id, retry=FAST)


def stats(org) -> dict[str, int]:
    return org.admin("GET", "stats").json()


def other_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


# --- the sandbox's logins -------------------------------------------------------------------------
def test_soap_login_with_password_and_token(org, login_conns, monkeypatch):
    client = hook_for(monkeypatch, conn_with(login_conns["password"])).get_conn()
    assert client.auth_type == "password" and client.sf_instance == org.url.removeprefix("https://")
    assert client.session_id != org.token and client.session_id.startswith("00D")
    assert client.query("SELECT COUNT() FROM Contact")["totalSize"] == 0
    assert stats(org)["logins.soap"] == 1


@pytest.mark.parametrize(
    "changes",
    [{"password": "wrong"}, {"security_token": "wrong"}, {"login": "someone@else.example"}],
    ids=["password", "token", "username"],
)
def test_soap_login_refused(org, login_conns, monkeypatch, changes):
    with pytest.raises(SalesforceAuthenticationFailed) as refused:
        hook_for(monkeypatch, conn_with(login_conns["password"], **changes)).get_conn()
    assert (refused.value.code, refused.value.auth_message) == ("INVALID_LOGIN", INVALID_LOGIN)


def test_soap_login_without_the_token_is_refused(org, login_conns):
    """The sandbox has no trusted IP ranges: the password alone never logs in."""
    conn = json.loads(login_conns["password"])
    with pytest.raises(SalesforceAuthenticationFailed) as refused:
        SalesforceLogin(
            username=conn["login"], password=conn["password"], domain=conn["extra"]["domain"], session=org.session()
        )
    assert refused.value.code == "INVALID_LOGIN"


def test_jwt_bearer_login(org, login_conns, monkeypatch):
    client = hook_for(monkeypatch, conn_with(login_conns["jwt"])).get_conn()
    assert client.auth_type == "jwt-bearer" and client.sf_instance == org.url.removeprefix("https://")
    assert client.query("SELECT COUNT() FROM Contact")["totalSize"] == 0
    assert stats(org)["logins.oauth"] == 1


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"private_key_file_path": None, "private_key": "other"}, ("invalid_grant", "invalid assertion")),
        ({"consumer_key": "3MVG9-not-the-app"}, ("invalid_client_id", "client identifier invalid")),
        ({"login": "someone@else.example"}, ("invalid_grant", "user hasn't approved this consumer")),
    ],
    ids=["wrong-key", "wrong-consumer-key", "wrong-user"],
)
@pytest.mark.filterwarnings("ignore::UserWarning")  # simple_salesforce's advice on an unknown user
def test_jwt_bearer_login_refused(org, login_conns, monkeypatch, changes, error):
    if changes.get("private_key") == "other":
        changes = {**changes, "private_key": other_key()}
    with pytest.raises(SalesforceAuthenticationFailed) as refused:
        hook_for(monkeypatch, conn_with(login_conns["jwt"], **changes)).get_conn()
    assert (refused.value.code, refused.value.auth_message) == error


def test_jwt_claims_are_checked(org, login_conns, tmp_root):
    """``aud`` must be the login URL posted to, ``exp`` in the future and at most 3 minutes ahead."""
    conn = json.loads(login_conns["jwt"])
    key = (tmp_root / "sf" / "connected_app.key").read_text()
    login_url = f"{org.url}/login.salesforce.com"
    now = datetime.now(UTC)

    def post(**claims: object) -> requests.Response:
        payload = {"iss": conn["extra"]["consumer_key"], "sub": conn["login"], "aud": login_url}
        payload["exp"] = int((now + timedelta(minutes=2)).timestamp())
        payload.update(claims)
        assertion = jwt.encode(payload, key, algorithm="RS256")
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
        return requests.post(f"{login_url}/services/oauth2/token", data=form, verify=str(org.ca), timeout=30)

    granted = post()
    assert granted.status_code == 200
    body = granted.json()
    assert body["instance_url"] == org.url and body["token_type"] == "Bearer"
    assert {"access_token", "id", "issued_at", "signature"} <= set(body)
    for claims, description in (
        ({"aud": "https://login.salesforce.com"}, "audience is invalid"),
        ({"exp": int((now - timedelta(seconds=5)).timestamp())}, "expired authorization code"),
        ({"exp": int((now + timedelta(minutes=30)).timestamp())}, "invalid assertion"),
    ):
        refused = post(**claims)
        assert refused.status_code == 400
        assert refused.json() == {"error": "invalid_grant", "error_description": description}


def test_username_password_grant(org, login_conns, monkeypatch, tmp_root):
    user = json.loads((tmp_root / "sf" / "credentials.json").read_text())
    grant = conn_with(
        login_conns["password"],
        password=user["password"] + user["security_token"],  # the token appended, as the API wants it
        security_token=None,
        consumer_key=user["consumer_key"],
        consumer_secret=user["consumer_secret"],
    )
    client = hook_for(monkeypatch, grant).get_conn()
    assert client.query("SELECT COUNT() FROM Contact")["totalSize"] == 0
    for changes, error in (
        ({"consumer_secret": "0" * 64}, ("invalid_client", "invalid client credentials")),
        ({"password": user["password"]}, ("invalid_grant", "authentication failure")),  # no token
    ):
        with pytest.raises(SalesforceAuthenticationFailed) as refused:
            hook_for(monkeypatch, conn_with(json.dumps(grant), **changes)).get_conn()
        assert (refused.value.code, refused.value.auth_message) == error


def test_expired_sessions_get_401_and_only_a_fresh_login_helps(org, login_conns, monkeypatch):
    hook = hook_for(monkeypatch, conn_with(login_conns["password"]))
    session_id = hook.get_conn().session_id
    direct = Salesforce(session_id=session_id, instance_url=org.url, session=org.session())
    assert direct.query("SELECT COUNT() FROM Contact")["totalSize"] == 0
    assert org.admin("POST", "sessions/expire").json()["expired"] >= 1
    with pytest.raises(SalesforceExpiredSession) as expired:
        direct.query("SELECT COUNT() FROM Contact")
    assert expired.value.content[0]["errorCode"] == "INVALID_SESSION_ID"
    assert org.session().get(f"{org.url}/services/data/v59.0/limits/").status_code == 200  # the static token
    hook.reconnect()
    assert hook.get_conn().session_id != session_id
    assert hook.query_all("SELECT Id FROM Contact")["totalSize"] == 0

    org.admin("PUT", "sessions", json={"lifetime_seconds": 1})  # seconds standing for hours
    hook.reconnect()
    short = Salesforce(session_id=hook.get_conn().session_id, instance_url=org.url, session=org.session())
    short.query("SELECT COUNT() FROM Contact")
    time.sleep(1.2)
    with pytest.raises(SalesforceExpiredSession):
        short.query("SELECT COUNT() FROM Contact")


def test_sessions_survive_a_restart_as_they_were(tmp_path):
    """A restart neither revives an expired session nor forgets a live one (``sessions.json``)."""
    from thrive_dev import sandbox as sf_sandbox
    from thrive_dev.services import sandbox_login_conns

    root = tmp_path / "sb"
    info = sf_sandbox.start(root)
    try:
        conn = json.loads(sandbox_login_conns(info, root)["SF_SANDBOX_PASSWORD_CONN"])
        login = {
            "username": conn["login"],
            "password": conn["password"],
            "security_token": conn["extra"]["security_token"],
        }
        domain = conn["extra"]["domain"]
        info.admin("PUT", "sessions", json={"lifetime_seconds": 1})
        short = Salesforce(**login, domain=domain, session=info.session()).session_id
        info.admin("PUT", "sessions", json={"lifetime_seconds": 3600})
        long = Salesforce(**login, domain=domain, session=info.session()).session_id
        time.sleep(1.1)
        sf_sandbox.stop(root)
        info = sf_sandbox.start(root)
        answers = {
            sid: requests.get(
                f"{info.url}/services/data/v59.0/limits/",
                headers={"Authorization": f"Bearer {sid}"},
                verify=str(info.ca),
                timeout=30,
            ).status_code
            for sid in (short, long)
        }
        assert answers == {short: 401, long: 200}
    finally:
        sf_sandbox.stop(root)


def test_refused_logins_lock_the_user_out(org, login_conns, monkeypatch):
    org.admin("PUT", "sessions", json={"max_login_attempts": 3})
    for _ in range(3):
        with pytest.raises(SalesforceAuthenticationFailed):
            hook_for(monkeypatch, conn_with(login_conns["password"], password="wrong")).get_conn()
    with pytest.raises(SalesforceAuthenticationFailed) as locked:
        hook_for(monkeypatch, conn_with(login_conns["password"])).get_conn()
    assert locked.value.auth_message == INVALID_LOGIN  # the right password, the same answer
    org.admin("POST", "reset")  # an admin unlocks the user
    assert hook_for(monkeypatch, conn_with(login_conns["password"])).get_conn().session_id


# --- the package: refusals end the task at once ---------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "changes", "said"),
    [
        ("password", {"password": "wrong"}, f"INVALID_LOGIN: {INVALID_LOGIN}"),
        ("jwt", {"private_key_file_path": None, "private_key": "other"}, "invalid_grant: invalid assertion"),
        ("jwt", {"consumer_key": "3MVG9-not-the-app"}, "invalid_client_id: client identifier invalid"),
    ],
    ids=["password", "jwt-wrong-key", "jwt-wrong-consumer-key"],
)
def test_preflight_fails_at_once_on_a_refused_login(org, login_conns, monkeypatch, shape, changes, said):
    """One login, refused, and the check ends naming the connection and what to check; no secret."""
    if changes.get("private_key") == "other":
        changes = {**changes, "private_key": other_key()}
    conn = conn_with(login_conns[shape], **changes)
    hook = hook_for(monkeypatch, conn, "salesforce_main")
    started = time.monotonic()
    with pytest.raises(LoginRefused) as refused:
        check_org(hook, load_mapping(DEFAULT_MAPPING))
    message = str(refused.value)
    assert time.monotonic() - started < 2  # no sleeps between fresh logins
    assert f"Salesforce refused the credentials of connection 'salesforce_main' ({said})" in message
    assert ("consumer_key" if shape == "jwt" else "security_token") in message
    assert stats(org)["logins.refused"] == 1 and stats(org).get("api_calls", 0) == 0
    secrets = [conn.get("password"), conn["extra"].get("security_token"), conn["extra"].get("private_key")]
    assert not any(s and s in message for s in secrets if s != "wrong")


def test_a_connection_with_no_complete_set_of_credentials_fails_naming_it(org, login_conns, monkeypatch):
    """A password without its security token fits no connection shape: a configuration error naming the
    connection (not the ``TypeError`` simple_salesforce raises, which Airflow would retry), no login tried."""
    conn = conn_with(login_conns["password"], security_token=None)
    with pytest.raises(ConfigurationError) as incomplete:
        check_org(hook_for(monkeypatch, conn, "salesforce_main"), load_mapping(DEFAULT_MAPPING))
    message = str(incomplete.value)
    assert "connection 'salesforce_main' holds no complete set of credentials" in message
    assert "security_token" in message and conn["password"] not in message
    assert stats(org).get("logins.refused", 0) == 0 and stats(org).get("logins.soap", 0) == 0


def test_a_relogin_refused_mid_run_ends_the_call_at_once(org, login_conns, monkeypatch):
    """Mid-run, the session expires and the user has been locked out meanwhile (another client with a
    stale password): the fresh login is refused, which is final, not transient."""
    hook = hook_for(monkeypatch, conn_with(login_conns["password"]))
    hook.query_all("SELECT Id FROM Contact")
    org.admin("PUT", "sessions", json={"max_login_attempts": 1})
    with pytest.raises(SalesforceAuthenticationFailed):
        hook_for(monkeypatch, conn_with(login_conns["password"], password="stale"), "other").get_conn()
    org.admin("POST", "sessions/expire")
    with pytest.raises(LoginRefused, match="connection 'sf_login' \\(INVALID_LOGIN"):
        hook.query_all("SELECT Id FROM Contact")
    assert stats(org)["logins.refused"] == 2  # the stale client's, then ours: once, not retried


def test_a_spent_daily_api_allowance_defers_every_row_and_nothing_is_tried_twice(wired, org, pg_server):
    """No API request left when the run starts: each task's first call is refused, its rows are deferred
    (DEFERRED_QUOTA, carried to the next run), the run succeeds and the report says why."""
    org.admin("PUT", "limits", json={"DailyApiRequests": {"Max": 15_000, "Remaining": 0}})
    result = dags_test()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    states = task_states(pg_server, airflow_run_id(pg_server))
    assert {state for _, state in states.values()} == {"success"} and {t for t, _ in states.values()} == {1}, states
    with psycopg.connect(wired) as conn:
        deferred, failed, written = conn.execute(
            "SELECT sum(deferred), sum(failed), sum(written) FROM thrive_sync.sync_runs WHERE dag_run_id = %s",
            [latest_run_id(wired)],
        ).fetchone()
    assert deferred == failed > 0 and written == 0
    assert stats(org).get("records.received", 0) == 0
    assert "the org refuses calls: REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded." in output
    assert stats(org)["api_calls"] == 2 * SYNC_TASKS  # a refused describe and a refused /limits a task: none resent


def test_a_refusal_mid_write_names_every_record_taken_and_not_confirmed(org, salesforce_conn, sf):
    """The allowance runs out while the first of three Bulk jobs runs: the writer names the records of
    the jobs it never saw end and those it had read ahead to choose Bulk, each once; the rest are
    still in the caller's stream (the task defers both)."""
    contact = sf.Contact.create({"LastName": "C"})["id"]
    hook = SalesforceApiHook(salesforce_conn, retry=FAST)
    writer = SalesforceWriter(hook, TA, EXT, bulk_threshold=100, bulk_job_rows=20)
    org.admin("PUT", "limits", json={"DailyApiRequests": {"Max": 15_000, "Remaining": 3}})
    stream = iter([(f"r:{i}", contact, "Opened") for i in range(150)])
    with pytest.raises(DailyLimitReached) as spent:
        list(writer.write_rows([EXT, "Contact__c", "Activity__c"], stream, only_failures=True))
    rest = [row[0] for row in stream]
    assert len(spent.value.unconfirmed) == 100 and sorted(spent.value.unconfirmed + rest) == sorted(
        f"r:{i}" for i in range(150)
    )


def test_a_spent_bulk_allowance_fails_the_write_at_once(org, salesforce_conn, sf):
    org.admin("PUT", "limits", json={"DailyBulkApiBatches": {"Max": 15_000, "Remaining": 0}})
    contact = sf.Contact.create({"LastName": "C"})["id"]
    writer = SalesforceWriter(SalesforceApiHook(salesforce_conn, retry=FAST), TA, EXT, bulk_threshold=10)
    records = ({EXT: f"b:{i}", "Contact__c": contact, "Activity__c": "Opened"} for i in range(50))
    with pytest.raises(DailyLimitReached) as spent:
        list(writer.write(records))
    assert "Max Bulk API batches exceeded for the day." in str(spent.value)
    assert "DailyBulkApiBatches" in str(spent.value) and "'salesforce_default'" in str(spent.value)
    assert stats(org)["api_calls.POST jobs/ingest"] == 1  # not resent by urllib3, tenacity or a new job


def test_concurrency_refusals_are_still_resent(org, salesforce_conn):
    """403 ``ConcurrentPerOrgLongTxn Limit exceeded.`` clears by itself: resent, and the call succeeds."""
    org.admin("PUT", "faults", json={"limit_403_requests": 3})
    hook = SalesforceApiHook(salesforce_conn, retry=FAST)
    assert hook.query_all("SELECT Id FROM Contact")["totalSize"] == 0
    assert stats(org)["api_calls.GET query"] == 4


# --- the package: expired sessions mid-run ----------------------------------------------------------
@pytest.mark.parametrize("shape", ["password", "jwt"])
def test_a_bulk_write_completes_when_sessions_expire_mid_run(org, login_conns, monkeypatch, sf, shape):
    """Sessions end twice while jobs run and are built: the hook logs in again, every record is written."""
    contact = sf.Contact.create({"LastName": "C"})["id"]
    hook = hook_for(monkeypatch, conn_with(login_conns[shape]))
    writer = SalesforceWriter(hook, TA, EXT, bulk_threshold=10, bulk_job_rows=1_000, poll_seconds=0.05)

    def records():
        for i in range(5_000):
            if i in (1_500, 3_500):
                org.admin("POST", "sessions/expire")
            yield {EXT: f"x:{i}", "Contact__c": contact, "Activity__c": "Opened"}

    outcomes = list(writer.write(records()))
    assert len(outcomes) == 5_000 and all(o.written for o in outcomes)
    assert sf.query(f"SELECT COUNT() FROM {TA}")["totalSize"] == 5_000
    counters = stats(org)
    assert counters["refused.INVALID_SESSION_ID"] >= 1
    assert counters["logins.soap" if shape == "password" else "logins.oauth"] >= 2


@pytest.mark.parametrize("shape", ["password", "jwt"])
def test_collections_writes_complete_with_sessions_shorter_than_the_run(org, login_conns, monkeypatch, sf, shape):
    """Sessions of one second, calls of 0.3 s: simple_salesforce logs in again on its own."""
    contact = sf.Contact.create({"LastName": "C"})["id"]
    org.admin("PUT", "sessions", json={"lifetime_seconds": 1})
    org.admin("PUT", "faults", json={"latency_ms": 300})
    writer = SalesforceWriter(hook_for(monkeypatch, conn_with(login_conns[shape])), TA, EXT, bulk_threshold=10_000)
    records = ({EXT: f"c:{i}", "Contact__c": contact, "Activity__c": "Opened"} for i in range(1_200))
    outcomes = list(writer.write(records))
    assert len(outcomes) == 1_200 and all(o.written for o in outcomes)
    counters = stats(org)
    assert counters["refused.INVALID_SESSION_ID"] >= 1
    assert counters["logins.soap" if shape == "password" else "logins.oauth"] >= 2


@pytest.mark.parametrize("shape", ["password", "jwt"])
def test_a_days_run_with_a_login_connection_survives_expired_sessions(
    wired, org, login_conns, pg_server, monkeypatch, shape
):
    """``AIRFLOW_CONN_SALESFORCE_DEFAULT`` set to the sandbox's password or JWT connection, as `make up`
    exports them; sessions end while the run writes (through Bulk and Collections: the day has a
    category above the Bulk threshold), and the whole day is written.

    Sessions last one second and every call takes at least 0.4 s, so a task's fourth call after a login
    always meets an expired session (the Bulk task makes five: describe, create, upload, close, poll),
    whatever the machine's speed. A background thread that expired sessions after write calls could
    miss: the last write of a task has no call after it.
    """
    conn = conn_with(login_conns[shape], retry_initial_seconds=0.2, retry_max_seconds=1.0, retry_budget_seconds=60)
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(conn))
    org.admin("PUT", "sessions", json={"lifetime_seconds": 1})  # seconds standing for hours
    org.admin("PUT", "faults", json={"latency_ms": 400})
    result = dags_test()
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    with psycopg.connect(wired) as db:
        expected = db.execute(
            "SELECT count(*) FROM thrive_sample.expected_outcomes WHERE outcome = 'written'"
        ).fetchone()[0]
        written = db.execute(
            "SELECT sum(written) FROM thrive_sync.sync_runs WHERE dag_run_id = %s", [airflow_run_id(pg_server)]
        ).fetchone()[0]
    sf = Salesforce(session_id=org.token, instance_url=org.url, session=org.session())
    assert written == expected == sf.query(f"SELECT COUNT() FROM {TA}")["totalSize"]
    counters = stats(org)
    assert counters["api_calls.POST jobs/ingest"] and counters["api_calls.PATCH composite/sobjects"], counters
    assert counters.get("refused.INVALID_SESSION_ID", 0) >= 1, counters
    assert counters["logins.soap" if shape == "password" else "logins.oauth"] > SYNC_TASKS, counters


def test_credentials_refused_is_not_retried_by_airflow():
    from thrive_sync.errors import NOT_RETRIED

    assert issubclass(LoginRefused, CredentialsRefused) and issubclass(LoginRefused, NOT_RETRIED)
    assert issubclass(DailyLimitReached, NOT_RETRIED)
