"""``python -m sf_sandbox serve``: run the sandbox in the foreground (``make up`` runs it detached).

First start creates, under ``--dir``: a throwaway CA and a certificate for 127.0.0.1 (``trustme``),
the static session token, the org's user and connected app (``credentials.json`` and the JWT key
pair, :mod:`sf_sandbox.auth`), and the org's SQLite file. Later starts reuse them, so the CA bundle,
token and credentials stay valid and the records and sessions survive restarts. ``server.json``
says where it listens.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import ssl
import sys
import threading
from pathlib import Path

from sf_sandbox.auth import OrgAuth
from sf_sandbox.server import Sandbox, SandboxServer

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_METADATA = PROJECT_ROOT / "include" / "salesforce" / "force-app" / "main" / "default"


def ensure_tls(root: Path) -> ssl.SSLContext:
    """The server's TLS context, from files made once per sandbox folder."""
    ca_file, cert_file, key_file = root / "ca.pem", root / "server.pem", root / "server.key"
    if not (ca_file.exists() and cert_file.exists() and key_file.exists()):
        import trustme

        ca = trustme.CA(organization_name="thrive-tracking-sync local sandbox")
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        ca.cert_pem.write_to_path(str(ca_file))
        leaf.private_key_pem.write_to_path(str(key_file))
        leaf.cert_chain_pems[0].write_to_path(str(cert_file))
        for extra in leaf.cert_chain_pems[1:]:
            with cert_file.open("ab") as out:
                out.write(extra.bytes())
        key_file.chmod(0o600)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


def ensure_token(root: Path) -> str:
    path = root / "token"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def serve(root: Path, port: int, metadata: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    context = ensure_tls(root)
    sandbox = Sandbox(root, metadata, ensure_token(root))
    sandbox.auth = OrgAuth(root, sandbox.token)  # the org's user, connected app and login sessions
    try:
        server = SandboxServer(("127.0.0.1", port), sandbox, context)
    except OSError as err:
        sys.exit(f"sf_sandbox: cannot listen on 127.0.0.1:{port}: {err.strerror}; pick another port (SF_SANDBOX_PORT)")
    actual = server.server_address[1]
    info = {"pid": os.getpid(), "port": actual, "url": f"https://127.0.0.1:{actual}"}
    (root / "server.json").write_text(json.dumps(info))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"sf_sandbox: listening on {info['url']} (data in {root})", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        (root / "server.json").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sf_sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve")
    run.add_argument("--dir", type=Path, required=True)
    run.add_argument("--port", type=int, default=0, help="0 picks a free port")
    run.add_argument("--metadata", type=Path, default=DEFAULT_METADATA)
    args = parser.parse_args(argv)
    serve(args.dir.resolve(), args.port, args.metadata)
    return 0


if __name__ == "__main__":
    sys.exit(main())
