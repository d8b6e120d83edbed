"""SOAP and OAuth 2.0 logins on the wire, answered as an org answers them.

- ``POST .../services/Soap/u/<version>``: the partner API's ``login`` call (username; the password
  with the security token appended). Success: ``loginResponse`` with ``sessionId`` and ``serverUrl``;
  refusal: a 500 SOAP fault ``INVALID_LOGIN``.
- ``POST .../services/oauth2/token`` (form-encoded): the JWT bearer grant (an RS256 assertion signed
  with the connected app's key: ``iss`` the consumer key, ``sub`` the username, ``aud`` the login URL
  the client posted to, ``exp`` in the future and at most 3 minutes ahead) and the username-password
  grant (consumer key and secret, the password with the token appended). Success: JSON with
  ``access_token`` and ``instance_url``; refusal: 400 ``{"error", "error_description"}``.

Any path prefix is accepted: a client reaches these by a ``domain`` such as ``127.0.0.1:PORT/login``
(``docs/development.md``). Users, secrets and sessions are :mod:`sf_sandbox.auth`'s.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qs
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import jwt
from cryptography import x509

from sf_sandbox.auth import OrgAuth

SOAP_LOGIN_PATH = re.compile(r".*/services/Soap/u/(\d+\.\d+)/?")
TOKEN_PATH = "/services/oauth2/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_MAX_AHEAD_SECONDS = 180 + 10  # "exp" within 3 minutes, plus some clock skew
_JSON = "application/json"
_XML = "text/xml; charset=UTF-8"
INVALID_LOGIN = "Invalid username, password, security token; or user locked out."
SOAP_FAULT = (
    '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
    ' xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    "<soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode><faultstring>{code}: {message}</faultstring>"
    '<detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}</sf:exceptionCode>'
    "<sf:exceptionMessage>{message}</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault>"
    "</soapenv:Body></soapenv:Envelope>"
)


@dataclass(frozen=True)
class LoginAnswer:
    """What to send back, and which counter it adds to (``soap``, ``oauth`` or ``refused``)."""

    status: int
    body: bytes
    content_type: str
    outcome: str


def answer(auth: OrgAuth, path: str, host: str, body: bytes, instance_url: str) -> LoginAnswer | None:
    """The answer to a POST on a login path; ``None`` when ``path`` is not one."""
    soap = SOAP_LOGIN_PATH.fullmatch(path)
    if soap:
        return soap_login(auth, body, instance_url, soap.group(1))
    if path.rstrip("/").endswith(TOKEN_PATH):
        login_url = f"https://{host}{path.rstrip('/')[: -len(TOKEN_PATH)]}"
        return token(auth, body, login_url, instance_url)
    return None


# --- SOAP -------------------------------------------------------------------------------------------
def soap_login(auth: OrgAuth, body: bytes, instance_url: str, version: str) -> LoginAnswer:
    try:
        envelope = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return _soap_fault("INVALID_LOGIN", INVALID_LOGIN)
    login = next((e for e in envelope.iter() if _local(e.tag) == "login"), None)
    if login is None:
        return _soap_fault("UNKNOWN_EXCEPTION", "This sandbox's SOAP endpoint answers the login call only.")
    given = {_local(e.tag): e.text or "" for e in login}
    username, password = given.get("username", ""), given.get("password", "")
    if not auth.check_user(username, auth.password_ok(password)):
        return _soap_fault("INVALID_LOGIN", INVALID_LOGIN)
    return LoginAnswer(200, _soap_result(auth, auth.sessions.issue(), instance_url, version), _XML, "soap")


def _soap_result(auth: OrgAuth, session_id: str, instance_url: str, version: str) -> bytes:
    c = auth.credentials
    org15 = c.org_id[:15]
    lifetime = auth.sessions.describe()["lifetime_seconds"]
    user_info = (
        f"<currencySymbol>$</currencySymbol><organizationId>{c.org_id}</organizationId>"
        "<organizationMultiCurrency>false</organizationMultiCurrency><organizationName>Thrive sandbox"
        f"</organizationName><sessionSecondsValid>{lifetime}</sessionSecondsValid><userEmail>"
        f"{escape(c.username)}</userEmail><userFullName>Integration User</userFullName><userId>{c.user_id}"
        f"</userId><userName>{escape(c.username)}</userName><userTimeZone>GMT</userTimeZone>"
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope'
        ' xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result>'
        f"<metadataServerUrl>{instance_url}/services/Soap/m/{version}/{org15}</metadataServerUrl>"
        "<passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
        f"<serverUrl>{instance_url}/services/Soap/u/{version}/{org15}</serverUrl>"
        f"<sessionId>{session_id}</sessionId><userId>{c.user_id}</userId><userInfo>{user_info}</userInfo>"
        "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
    ).encode()


def _soap_fault(code: str, message: str) -> LoginAnswer:
    return LoginAnswer(500, SOAP_FAULT.format(code=code, message=escape(message)).encode(), _XML, "refused")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


# --- OAuth 2.0 --------------------------------------------------------------------------------------
def token(auth: OrgAuth, body: bytes, login_url: str, instance_url: str) -> LoginAnswer:
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    grant = form.get("grant_type")
    if grant == JWT_GRANT:
        refused = _jwt_refusal(auth, form.get("assertion", ""), login_url)
    elif grant == "password":
        refused = _password_refusal(auth, form)
    else:
        refused = ("unsupported_grant_type", "grant type not supported")
    if refused:
        error = json.dumps({"error": refused[0], "error_description": refused[1]})
        return LoginAnswer(400, error.encode(), _JSON, "refused")
    c = auth.credentials
    issued_at = str(int(time.time() * 1000))
    identity = f"{login_url}/id/{c.org_id}/{c.user_id}"
    digest = hmac.new(c.consumer_secret.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
    granted = {
        "access_token": auth.sessions.issue(),
        "scope": "api",
        "instance_url": instance_url,
        "id": identity,
        "token_type": "Bearer",
        "issued_at": issued_at,
        "signature": base64.b64encode(digest).decode(),
    }
    return LoginAnswer(200, json.dumps(granted).encode(), _JSON, "oauth")


def _jwt_refusal(auth: OrgAuth, assertion: str, login_url: str) -> tuple[str, str] | None:
    """Why the org refuses a JWT bearer assertion (``None``: it does not)."""
    c = auth.credentials
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return "invalid_grant", "invalid assertion"
    if claims.get("iss") != c.consumer_key:
        return "invalid_client_id", "client identifier invalid"
    public_key = x509.load_pem_x509_certificate(auth.certificate).public_key()
    try:
        jwt.decode(
            assertion,
            public_key,  # type: ignore[arg-type]
            algorithms=["RS256"],
            audience=login_url,
            options={"require": ["iss", "sub", "aud", "exp"]},
        )
    except jwt.InvalidAudienceError:
        return "invalid_grant", "audience is invalid"
    except jwt.ExpiredSignatureError:
        return "invalid_grant", "expired authorization code"
    except jwt.InvalidTokenError:
        return "invalid_grant", "invalid assertion"
    if float(claims["exp"]) > time.time() + JWT_MAX_AHEAD_SECONDS:
        return "invalid_grant", "invalid assertion"
    if claims.get("sub") != c.username:
        return "invalid_grant", "user hasn't approved this consumer"
    if not auth.check_user(c.username, True):  # locked out by refused password logins
        return "invalid_grant", "authentication failure"
    return None


def _password_refusal(auth: OrgAuth, form: dict[str, str]) -> tuple[str, str] | None:
    """Why the org refuses a username-password grant (``None``: it does not)."""
    c = auth.credentials
    if form.get("client_id") != c.consumer_key:
        return "invalid_client_id", "client identifier invalid"
    if not secrets.compare_digest(form.get("client_secret", "").encode(), c.consumer_secret.encode()):
        return "invalid_client", "invalid client credentials"
    if not auth.check_user(form.get("username", ""), auth.password_ok(form.get("password", ""))):
        return "invalid_grant", "authentication failure"
    return None
