"""One POST to a destination over real sockets (tracking/destinations/sender.py): what each answer
means, a kept connection reused, no redirect followed, an answer read only up to its cap, a silent or
dropped receiver retried, and TLS to the checked address under the destination's own name."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tracking.destinations.addresses import Target
from tracking.destinations.sender import BODY_CAP, Sender


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set[int] = set()  # noqa: RUF012 - shared by the handler instances
    received: list[tuple[str, bytes, dict[str, str]]] = []  # noqa: RUF012

    def log_message(self, *_: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Receiver.connections.add(id(self.connection))
        Receiver.received.append((self.path, body, dict(self.headers)))
        if self.path == "/drop":
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if self.path == "/slow":
            time.sleep(1.0)
        answers = {
            "/ok": (200, b"{}", {}),
            "/fail": (500, b"database down", {}),
            "/busy": (429, b"", {"Retry-After": "120"}),
            "/gone": (410, b"no such hook", {}),
            "/moved": (302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"}),
            "/big": (500, b"x" * (BODY_CAP * 50), {}),
            "/slow": (200, b"{}", {}),
        }
        code, answer, headers = answers[self.path]
        self.send_response(code)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture
def receiver() -> Iterator[int]:
    Receiver.connections = set()
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def at(port: int, path: str) -> Target:
    return Target("http", "127.0.0.1", port, "127.0.0.1", path)


def test_each_answer_is_delivered_retried_or_failed_as_the_contract_says(receiver: int) -> None:
    sender = Sender()
    assert sender.post(at(receiver, "/ok"), b"{}", {}).verdict == "delivered"
    failed = sender.post(at(receiver, "/fail"), b"{}", {})
    assert (failed.verdict, failed.status, failed.error) == ("retry", 500, "HTTP 500: database down")
    busy = sender.post(at(receiver, "/busy"), b"{}", {})
    assert (busy.verdict, busy.retry_after_s) == ("retry", 120.0)
    gone = sender.post(at(receiver, "/gone"), b"{}", {})
    assert (gone.verdict, gone.status) == ("failed", 410)


def test_a_redirect_is_not_followed(receiver: int) -> None:
    moved = Sender().post(at(receiver, "/moved"), b"{}", {})
    assert moved.verdict == "failed"
    assert "not followed" in (moved.error or "")
    assert [path for path, _, _ in Receiver.received] == ["/moved"]


def test_an_answer_is_read_only_up_to_its_cap(receiver: int) -> None:
    big = Sender().post(at(receiver, "/big"), b"{}", {})
    assert big.verdict == "retry"
    assert len(big.error or "") < BODY_CAP


def test_a_kept_connection_carries_the_next_request(receiver: int) -> None:
    sender = Sender()
    for _ in range(5):
        assert sender.post(at(receiver, "/ok"), b"{}", {"Idempotency-Key": "k"}).verdict == "delivered"
    assert len(Receiver.connections) == 1
    assert all(headers["Idempotency-Key"] == "k" for _, _, headers in Receiver.received)


def test_no_answer_within_the_timeout_and_a_dropped_connection_are_retried(receiver: int) -> None:
    sender = Sender(timeout_s=0.3)
    slow = sender.post(at(receiver, "/slow"), b"{}", {})
    assert (slow.verdict, slow.status) == ("retry", None)
    assert "within" in (slow.error or "")
    dropped = sender.post(at(receiver, "/drop"), b"{}", {})
    assert (dropped.verdict, dropped.status) == ("retry", None)
    refused = Sender().post(at(_closed_port(), "/ok"), b"{}", {})
    assert (refused.verdict, refused.status) == ("retry", None)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def test_tls_goes_to_the_checked_address_under_the_destinations_own_name(tmp_path: Path) -> None:
    """The name never resolves here: the connection goes to the address the check pinned, and TLS
    checks the certificate against the destination's name (another name's certificate fails)."""
    cert_file, key_file = _certificate(tmp_path, "hooks.example.test")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        trust = ssl.create_default_context(cafile=str(cert_file))
        pinned = Target("https", "hooks.example.test", port, "127.0.0.1", "/ok")
        assert Sender(tls=trust).post(pinned, b"{}", {}).verdict == "delivered"
        assert Receiver.received[-1][2]["Host"] == f"hooks.example.test:{port}"
        other = Target("https", "other.example.test", port, "127.0.0.1", "/ok")
        refused = Sender(tls=trust).post(other, b"{}", {})
        assert (refused.verdict, refused.status) == ("retry", None)
        assert "TLS" in (refused.error or "")
    finally:
        server.shutdown()
        server.server_close()
    assert ipaddress.ip_address(pinned.address).is_loopback
