"""A real local webhook receiver for the tests: an HTTP server on 127.0.0.1 in a thread that
records every request and answers as told (a status per request, or a delay)."""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes

    @property
    def payload(self):
        return json.loads(self.body)

    def verify(self, secret):
        """The payload, once its Standard Webhooks signature checks out with `secret`."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class Receiver:
    answers: list = field(default_factory=list)  # statuses to give, in turn; 200 once they run out
    delay: float = 0.0
    received: list = field(default_factory=list)
    server: object = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                if receiver.delay:
                    time.sleep(receiver.delay)
                code = receiver.answers.pop(0) if receiver.answers else 200
                answer = f"answer {code}".encode()
                self.send_response(code)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def types(self, path=None):
        return [r.payload["type"] for r in self.received if path is None or r.path == path]
