"""Servers on loopback that the security tests point hostile files at: one that records every
request it gets, one that accepts connections and never answers (a tarpit), and one that greets
each connection with a line that is no HTTP."""

import http.server
import socket
import threading
from contextlib import contextmanager


class RecordingServer:
    """An HTTP server on 127.0.0.1 that records the path of every request and answers each with
    `body` (or, for paths in `redirects`, a redirect to the URL given)."""

    def __init__(self, body=b"", redirects=None):
        self.requests, self.body, self.redirects = [], body, redirects or {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if self.path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[self.path])
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(server.body)

            do_HEAD = do_GET

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def tcp_server(greeting=None):
    """A TCP port on 127.0.0.1 that accepts connections: it sends each `greeting` and closes it, or,
    without one, never sends a byte (a tarpit). Yields (url, accepted): `accepted` counts the
    connections it took."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    accepted, held, stop = [], [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            accepted.append(1)
            if greeting is None:
                held.append(connection)
            else:
                with connection:
                    connection.sendall(greeting)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


def tarpit():
    """A TCP port on 127.0.0.1 that accepts connections and never sends a byte (see tcp_server)."""
    return tcp_server()
