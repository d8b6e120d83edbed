"""`make airflow`'s wait for the api-server: any request error while it starts means "not yet"."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from thrive_dev.airflow_ui import wait_for_api


class StartingServer(BaseHTTPRequestHandler):
    """Answers its first health checks later than the client waits, then promptly."""

    slow_answers = 2

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if StartingServer.slow_answers > 0:
            StartingServer.slow_answers -= 1
            time.sleep(0.6)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"status": "healthy"}')

    def log_message(self, *args: object) -> None:
        pass


def test_a_health_check_that_times_out_means_not_yet():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StartingServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert wait_for_api(url, timeout=20, request_timeout=0.2)
        assert StartingServer.slow_answers == 0  # it did time out twice before the answer
    finally:
        server.shutdown()


def test_nothing_listening_is_not_yet_until_the_deadline():
    started = time.monotonic()
    assert not wait_for_api("http://127.0.0.1:9", timeout=1.5, request_timeout=0.2)
    assert time.monotonic() - started < 5
