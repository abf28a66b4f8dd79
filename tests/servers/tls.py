"""A throwaway certificate authority and server certificate for loopback TLS tests."""
from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import MissingServer

# Names a client may use to reach the test servers; both must verify.
SUBJECT_ALT_NAME = "DNS:localhost,IP:127.0.0.1"


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the server's certificate chain and key, and the CA a client trusts."""

    certfile: str
    keyfile: str
    cafile: str

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certfile, self.keyfile)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cafile)


def make_certificates(directory: str | os.PathLike) -> TlsFiles:
    """Create (once per directory) a CA and a server certificate for localhost and 127.0.0.1.

    A separate CA rather than one self-signed leaf, because strict X.509 checking (the default
    from Python 3.13) rejects a CA certificate used as a server certificate.
    """
    if shutil.which("openssl") is None:
        raise MissingServer("openssl", "openssl")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(
        certfile=str(folder / "server.pem"),
        keyfile=str(folder / "server.key"),
        cafile=str(folder / "ca.pem"),
    )
    if Path(files.certfile).exists():
        return files
    ca_key, csr = folder / "ca.key", folder / "server.csr"
    # EC keys: generating RSA keys costs a noticeable fraction of a second each.
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *curve, "-keyout", ca_key, "-out", files.cafile, "-days", "30",
             "-subj", "/CN=CaseConsultant test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _openssl("req", "-new", *curve, "-keyout", files.keyfile, "-out", csr,
             "-subj", "/CN=localhost")
    extensions = folder / "server.ext"
    extensions.write_text(
        f"subjectAltName = {SUBJECT_ALT_NAME}\n"
        "basicConstraints = critical,CA:FALSE\n"
        "keyUsage = critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid\n"
    )
    _openssl("x509", "-req", "-in", csr, "-CA", files.cafile, "-CAkey", ca_key,
             "-CAcreateserial", "-out", files.certfile, "-days", "30", "-extfile", extensions)
    # Server processes that drop root (Dovecot's login processes) must be able to read them.
    for path in (files.certfile, files.keyfile, files.cafile):
        os.chmod(path, 0o644)
    return files


def _openssl(*args: str | os.PathLike) -> None:
    result = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed:\n{result.stderr}")
