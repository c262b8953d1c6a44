"""A TCP proxy in front of a test server that counts the bytes the server sent, to measure what
a client's reads cost on the wire."""

import socket
import socketserver
import threading


class CountingProxy:
    """Forwards 127.0.0.1:<port> to `upstream` (host, port); `sent` is the bytes that came back."""

    def __init__(self, upstream):
        self.upstream, self.sent, self.lock = upstream, 0, threading.Lock()
        proxy = self

        class Connection(socketserver.BaseRequestHandler):
            def handle(self):
                with socket.create_connection(proxy.upstream) as server:
                    to_server = threading.Thread(target=proxy._pump, args=(self.request, server, False), daemon=True)
                    to_server.start()
                    proxy._pump(server, self.request, True)
                    to_server.join(timeout=5)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Connection)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def _pump(self, source, target, counted):
        try:
            while data := source.recv(65536):
                if counted:
                    with self.lock:
                        self.sent += len(data)
                target.sendall(data)
        except OSError:
            pass
        finally:
            try:
                target.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
