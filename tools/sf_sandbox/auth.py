"""The org's users and sessions: who may log in, the sessions logins hand out, and when they end.

One integration user (username, password, security token) and one connected app (consumer key and
secret, and the X.509 certificate that verifies JWT bearer assertions) are made on the first start
of a sandbox folder and kept there: ``credentials.json`` holds the user and the app's keys,
``connected_app.crt`` the certificate the app holds, and ``connected_app.key`` the private key a JWT
connection signs with (a real org never sees that key; the sandbox writes it so that a local
connection can use it). Both secret files are mode 600.

Sessions are what the SOAP and OAuth logins (:mod:`sf_sandbox.logins`) hand out. Each ends a fixed
lifetime after its login (2 hours by default, as an org's default timeout), whatever the activity:
an org extends a session that is in use, so this is the stricter reading. ``sessions.json`` keeps
them, with the lifetime and the failed-login counts, so a restart neither revives an expired
session nor forgets a live one. The static token of ``DIR/token`` is not a session and never ends.

As an org does, a user with ``max_login_attempts`` refused logins in a row is locked out for
``lockout_seconds`` (10 and 15 minutes by default), and a locked user is refused with the same
``INVALID_LOGIN`` even with the right password.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sf_sandbox.ids import case_safe_suffix

DEFAULT_SETTINGS = {"lifetime_seconds": 7200, "max_login_attempts": 10, "lockout_seconds": 900}


@dataclass(frozen=True)
class Credentials:
    """The org's integration user and its connected app."""

    username: str
    password: str
    security_token: str
    consumer_key: str
    consumer_secret: str
    org_id: str
    user_id: str


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _id18(prefix: str) -> str:
    id15 = prefix + "5T" + _random(string.digits, 10)
    return id15 + case_safe_suffix(id15)


def _write_secret(path: Path, data: bytes) -> None:
    """Replace ``path`` whole with ``data``, readable by its owner only from the first byte on.

    The part file is made mode 600 (not written first and narrowed after, which would leave the
    secrets readable by anyone for a moment), and renamed over the old file, so that a reader sees
    the old or the new content, whole.
    """
    part = path.with_name(path.name + ".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(fd, 0o600)  # a part file left by a crash keeps its mode: set it again
        out.write(data)
    os.replace(part, path)


def ensure_credentials(root: Path) -> Credentials:
    """The folder's user and connected app, made on first use with fresh random secrets."""
    path = root / "credentials.json"
    if not path.exists():
        alnum = string.ascii_letters + string.digits
        made = Credentials(
            username="integration@thrive-sync.sandbox",
            password="Pw-" + _random(alnum, 16),
            security_token=_random(alnum, 24),
            consumer_key="3MVG9" + _random(alnum + "._", 80),
            consumer_secret=_random(string.digits + "ABCDEF", 64),
            org_id=_id18("00D"),
            user_id=_id18("005"),
        )
        _write_secret(path, json.dumps(asdict(made), indent=2).encode())
    return Credentials(**json.loads(path.read_text()))


def ensure_connected_app(root: Path) -> bytes:
    """The connected app's certificate (PEM), with its private key beside it, made on first use."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    cert_file, key_file = root / "connected_app.crt", root / "connected_app.key"
    if not (cert_file.exists() and key_file.exists()):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "thrive-tracking-sync JWT connection")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_secret(key_file, pem)
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_file.read_bytes()


class Sessions:
    """Live sessions ``{id: ends at (epoch seconds)}``, the settings, and failed logins; thread-safe."""

    def __init__(self, path: Path, org_id: str) -> None:
        self.path = path
        self.org_id = org_id
        self.lock = threading.Lock()
        saved = json.loads(path.read_text()) if path.exists() else {}
        self.settings = {**DEFAULT_SETTINGS, **saved.get("settings", {})}
        self.live: dict[str, float] = saved.get("sessions", {})
        self.failures: dict[str, list[float]] = saved.get("failures", {})  # user: [refused in a row, locked until]

    def issue(self) -> str:
        """A new session id (the org id, ``!``, a random part, as an org's look)."""
        session_id = f"{self.org_id[:15]}!{secrets.token_urlsafe(72)}"
        with self.lock:
            self.live[session_id] = time.time() + self.settings["lifetime_seconds"]
            self._save()
        return session_id

    def is_live(self, session_id: str) -> bool:
        with self.lock:
            ends = self.live.get(session_id)
        return ends is not None and ends > time.time()

    def expire_all(self) -> int:
        """End every session issued so far; how many were live."""
        now = time.time()
        with self.lock:
            count = sum(ends > now for ends in self.live.values())
            self.live.clear()
            self._save()
        return count

    def configure(self, values: dict) -> dict:
        """Change settings (for sessions issued from now on); the settings and live sessions."""
        unknown = set(values) - set(DEFAULT_SETTINGS)
        if unknown:
            raise ValueError(f"unknown session setting(s) {sorted(unknown)}: use {sorted(DEFAULT_SETTINGS)}")
        with self.lock:
            self.settings.update({k: int(v) for k, v in values.items()})
            self._save()
        return self.describe()

    def reset(self) -> None:
        """Default settings and no lockouts (a reset org); live sessions stay live."""
        with self.lock:
            self.settings = dict(DEFAULT_SETTINGS)
            self.failures.clear()
            self._save()

    def describe(self) -> dict:
        now = time.time()
        with self.lock:
            return {**self.settings, "live": sum(ends > now for ends in self.live.values())}

    def attempt(self, username: str, secret_ok: bool) -> bool:
        """One login of an existing user: accepted unless the secret is wrong or the user is locked out.

        A refusal counts towards the lockout; an acceptance clears the count. Decided and counted
        under one hold of the lock: two at once must not let an acceptance wipe out a lockout
        that a concurrent refusal has just set.
        """
        now = time.time()
        with self.lock:
            count, until = self.failures.get(username, [0, 0.0])
            if until > now:  # locked: refused, and it stays locked until its time is up
                return False
            if secret_ok:
                if self.failures.pop(username, None) is not None:
                    self._save()
                return True
            if count + 1 >= self.settings["max_login_attempts"]:
                self.failures[username] = [0, now + self.settings["lockout_seconds"]]
            else:
                self.failures[username] = [count + 1, 0.0]
            self._save()
            return False

    def _save(self) -> None:
        """Write the file (under the lock), dropping sessions that have ended."""
        now = time.time()
        self.live = {sid: ends for sid, ends in self.live.items() if ends > now}
        state = {"settings": self.settings, "sessions": self.live, "failures": self.failures}
        _write_secret(self.path, json.dumps(state).encode())


class OrgAuth:
    """The org's user, connected app and sessions, made or loaded from the sandbox folder."""

    def __init__(self, root: Path, static_token: str) -> None:
        self.credentials = ensure_credentials(root)
        self.certificate = ensure_connected_app(root)
        self.sessions = Sessions(root / "sessions.json", self.credentials.org_id)
        self.static_token = static_token

    def accepts(self, token: str) -> bool:
        """Whether an API call with this bearer token (or ``X-SFDC-Session``) is let in."""
        if not token:
            return False
        return secrets.compare_digest(token.encode(), self.static_token.encode()) or self.sessions.is_live(token)

    def check_user(self, username: str, secret_ok: bool) -> bool:
        """Whether a login of ``username`` whose secret is ``secret_ok`` succeeds (counting refusals)."""
        if username != self.credentials.username:
            return False
        return self.sessions.attempt(username, secret_ok)

    def password_ok(self, given: str) -> bool:
        """Password and security token, concatenated, as the API expects them (no trusted IP ranges)."""
        expected = self.credentials.password + self.credentials.security_token
        return secrets.compare_digest(given.encode(), expected.encode())
