"""A real RFC 3161 timestamp authority on 127.0.0.1: `openssl ts -reply` behind HTTP.

Its own CA and TSA certificate are made with openssl on start. Each POST of an
`application/timestamp-query` is answered by a real `openssl ts -reply`, as an authority
would over HTTP (RFC 3161 section 3.4). `fault` makes it answer 500, a wrong content
type, or garbage, on demand.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

Fault = Literal["none", "error", "content-type", "garbage"]

_EXTENSIONS = """[tsa_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, timeStamping
"""

_CONFIG = """[tsa]
default_tsa = tsa1
[tsa1]
dir = {dir}
serial = {dir}/serial
signer_cert = {dir}/tsa.crt
signer_key = {dir}/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.1
other_policies = 1.3.6.1.4.1.99999.2
digests = sha256
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_authority(root: Path, name: str = "test") -> Path:
    """A CA and a TSA certificate under `root`; returns the CA certificate's path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "ext.cnf").write_text(_EXTENSIONS)
    (root / "ts.cnf").write_text(_CONFIG.format(dir=root))
    (root / "serial").write_text("01\n")
    _openssl("req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", "ca.key", "-out",
             "ca.crt", "-subj", f"/CN={name} root", "-days", "3650", "-addext",
             "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
             cwd=root)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tsa.key", "-out", "tsa.csr",
             "-subj", f"/CN={name} tsa", cwd=root)
    _openssl("x509", "-req", "-in", "tsa.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "tsa.crt", "-days", "3650", "-extfile", "ext.cnf",
             "-extensions", "tsa_ext", cwd=root)
    return root / "ca.crt"


class LocalAuthority:
    """The running authority: its URL, its CA certificate, what it was asked, its fault."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca_file = make_authority(root)
        self.fault: Fault = "none"
        self.queries = 0
        self.url = ""
        self._lock = threading.Lock()

    def reply(self, query: bytes) -> bytes:
        """A real `openssl ts -reply` to `query`."""
        with self._lock:
            self.queries += 1
            (self.root / "q.tsq").write_bytes(query)
            _openssl("ts", "-reply", "-config", "ts.cnf", "-queryfile", "q.tsq", "-out",
                     "r.tsr", cwd=self.root)
            return (self.root / "r.tsr").read_bytes()


@contextmanager
def local_authority(root: Path) -> Iterator[LocalAuthority]:
    """Serve a `LocalAuthority` made under `root` until the block ends."""
    authority = LocalAuthority(root)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fault = authority.fault
            if fault == "error" or self.headers.get("Content-Type") != \
                    "application/timestamp-query":
                self._send(500 if fault == "error" else 415, "text/plain", b"refused")
                return
            token = b"not a token" if fault == "garbage" else authority.reply(body)
            self._send(200, "text/html" if fault == "content-type"
                       else "application/timestamp-reply", token)

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    authority.url = f"http://127.0.0.1:{server.server_address[1]}/tsa"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield authority
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
