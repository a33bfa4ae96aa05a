"""The TLS port's certificate: the user's (TLS_CERT and TLS_KEY), else a self-signed one.

`make up` calls :func:`ensure_certificate` in both run modes. The self-signed pair is made once
with openssl (from Debian, installed by `make setup`) into the state folder and reused; it names
localhost and 127.0.0.1, so a client that trusts it (curl --cacert, tests) checks the name too.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CERT_ENV = "TLS_CERT"
KEY_ENV = "TLS_KEY"
SELF_SIGNED_DAYS = 365
SUBJECT_ALT_NAMES = "DNS:localhost,IP:127.0.0.1,IP:::1"


class TlsError(RuntimeError):
    pass


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path
    self_signed: bool


def tls_dir(state_dir: Path) -> Path:
    return state_dir / "tls"


def certificate_paths(state_dir: Path, environ: dict[str, str]) -> Certificate:
    """Where the pair is (the user's, else the self-signed one's place), made or not."""
    cert, key = environ.get(CERT_ENV, "").strip(), environ.get(KEY_ENV, "").strip()
    if cert or key:
        if not (cert and key):
            raise TlsError(f"set both {CERT_ENV} and {KEY_ENV}, or neither (self-signed)")
        return Certificate(Path(cert).resolve(), Path(key).resolve(), self_signed=False)
    folder = tls_dir(state_dir)
    return Certificate(folder / "cert.pem", folder / "key.pem", self_signed=True)


def ensure_certificate(state_dir: Path, environ: dict[str, str]) -> Certificate:
    pair = certificate_paths(state_dir, environ)
    if not pair.self_signed:
        for path, name in ((pair.cert, CERT_ENV), (pair.key, KEY_ENV)):
            if not path.is_file():
                raise TlsError(f"{name}={path}: no such file")
        return pair
    if pair.cert.is_file() and pair.key.is_file():
        return pair
    folder = pair.cert.parent
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TlsError(
            "'openssl' is not installed. On Debian/Ubuntu: sudo apt-get install openssl "
            f"(or run `make setup` as root), or set {CERT_ENV} and {KEY_ENV}."
        )
    # The folder is private to its owner; the files inside are readable so that a container
    # running as another user (nginx in Docker mode) can read its bind mount.
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    for path in (pair.cert, pair.key):
        # A container started before the pair existed leaves an empty directory at a missing
        # bind-mount source; ours to replace, being in our own state folder.
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    result = subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            str(SELF_SIGNED_DAYS),
            "-subj",
            "/CN=localhost",
            "-addext",
            f"subjectAltName={SUBJECT_ALT_NAMES}",
            "-keyout",
            str(pair.key),
            "-out",
            str(pair.cert),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise TlsError(f"openssl could not make a self-signed certificate:\n{result.stderr}")
    pair.key.chmod(0o644)
    return pair
