"""The emulator's network side: the HTTPS request handler that feeds its route table, the
proxy that tunnels storage host names to it, and its self-signed certificate."""

from __future__ import annotations

import datetime
import select
import socket
import urllib.parse
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

STORAGE_SUFFIX = "core.emulator.test"
# Blobs are addressed path-style, as on Azurite (https://127.0.0.1:PORT/ACCOUNT/container/blob).
# azureml-mlflow downloads only from URLs that contain ".blob.<storage suffix>/", so the
# account segment carries it.
BLOB_ACCOUNT = f"stworkspace.blob.{STORAGE_SUFFIX}"


class Caseless(dict):
    """Request headers, looked up without regard to case as HTTP means them."""

    def get(self, key, default=None):
        for name, value in self.items():
            if name.lower() == key.lower():
                return value
        return default

    def __getitem__(self, key):
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value


class Handler(BaseHTTPRequestHandler):
    """Hands every request to ``owner.serve`` and writes its Response back."""

    owner: Any  # the AzureEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _serve(self) -> None:
        if self.owner.unreachable:  # as a host that is down: the connection drops, no answer
            self.close_connection = True
            return
        parsed = urllib.parse.urlparse(self.path)
        host = (self.headers.get("Host") or "").partition(":")[0]
        if host.endswith(STORAGE_SUFFIX):  # a blob URL by host name: route it path-style
            parsed = parsed._replace(path=f"/{host}{parsed.path}")
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = Caseless({**dict(self.headers.items()), "X-Method": self.command})
        response = self.owner.serve(self.command, parsed.path, query, headers, body)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve


class Tunnel(BaseHTTPRequestHandler):
    """An HTTP proxy that only tunnels (CONNECT) storage host names to the emulator."""

    owner: Any

    def log_message(self, *args) -> None:
        pass

    def do_CONNECT(self) -> None:
        host = self.path.partition(":")[0]
        if not host.endswith("." + STORAGE_SUFFIX):
            self.send_error(403, f"the emulator's proxy does not reach {host}")
            return
        upstream = socket.create_connection(("127.0.0.1", self.owner.port))
        self.send_response(200, "Connection established")
        self.end_headers()
        try:
            _relay(self.connection, upstream)
        finally:
            upstream.close()


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    ends = [client, upstream]
    while True:
        ready, _, _ = select.select(ends, [], [], 30)
        if not ready:
            return
        for end in ready:
            data = end.recv(65536)
            if not data:
                return
            (upstream if end is client else client).sendall(data)


def write_self_signed_certificate(cert_file: Path, key_file: Path) -> None:
    """A certificate for 127.0.0.1 that is its own CA, for REQUESTS_CA_BUNDLE."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlmagic Azure emulator")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"),
            x509.DNSName(BLOB_ACCOUNT)]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
