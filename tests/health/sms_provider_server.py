"""A local HTTPS server playing an SMS provider's API: it records every request (method, path,
headers, body) and answers from a script of (status, JSON body) pairs, the last one repeating.
Its certificate comes from a test CA that the settings' ``[sms] ca_file`` names."""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.health.pki import TestPKI


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class ProviderServer:
    directory: Path
    answers: list[tuple[int, object]] = field(default_factory=lambda: [(200, {})])
    received: list[Received] = field(default_factory=list)
    delay_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.pki = TestPKI(self.directory)
        issued = self.pki.issue("sms-provider", "localhost", "Fournisseur SMS de test")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(issued.cert_path, issued.key_path)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                server.received.append(
                    Received(
                        "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body
                    )
                )
                if server.delay_seconds:
                    threading.Event().wait(server.delay_seconds)
                index = min(len(server.received), len(server.answers)) - 1
                status, answer = server.answers[index]
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def ca_file(self) -> str:
        return str(self.pki.ca_path)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.httpd.server_address[1]}"

    def start(self) -> ProviderServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
