"""The certificate authority and server certificate `mirror serve` uses (cryptography, ECDSA P-256).

A generated CA is kept and reused (hosts that trust it keep working across restarts); the server
certificate is issued again whenever the names it must carry change or it nears its end.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kvinstall.errors import LocalIOError, UsageError
from kvinstall.fsutil import write_atomic

CA_DAYS = 3650
SERVER_DAYS = 365
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class TLSFiles:
    ca: Path  # what clients trust
    cert: Path
    key: Path
    generated_ca: bool


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.expanduser().read_bytes()
    except OSError as exc:
        raise LocalIOError(f"cannot read the {what}: {exc.strerror or exc}", where=str(path)) from exc


def load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_read(path, "certificate"))
    except ValueError as exc:
        raise UsageError(f"{path}: not a PEM certificate ({exc})") from exc


def load_key(path: Path) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(path, "private key"), password=None)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path}: not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise UsageError(f"{path}: an EC or RSA key is needed, not {type(key).__name__}")
    return key


def _general_names(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def make_ca(directory: Path) -> tuple[Path, Path]:
    """directory/ca.crt and ca.key (0600), made once and then reused."""
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    if cert_path.is_file() and key_path.is_file():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kvinstall site CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_atomic(key_path, _key_pem(key), mode=0o600)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _current(cert_path: Path, key_path: Path, ca: x509.Certificate, names: list[str]) -> bool:
    if not (cert_path.is_file() and key_path.is_file()):
        return False
    cert = load_cert(cert_path)
    if cert.issuer != ca.subject or cert.not_valid_after_utc - RENEW_BEFORE < _now():
        return False
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return set(map(str, sans)) == set(map(str, _general_names(names)))


def issue_server(directory: Path, ca_cert: Path, ca_key: Path, names: list[str]) -> tuple[Path, Path]:
    """directory/server.crt and server.key for `names` (IP addresses and DNS names), signed by the CA."""
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    ca = load_cert(ca_cert)
    if _current(cert_path, key_path, ca, names):
        return cert_path, key_path
    signer = load_key(ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(min(now + dt.timedelta(days=SERVER_DAYS), ca.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
        .sign(signer, hashes.SHA256())
    )
    write_atomic(key_path, _key_pem(key), mode=0o600)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def check_pair(cert_path: Path, key_path: Path, ca_path: Path) -> None:
    """A given certificate must match its key and be signed by the given CA (UsageError if not)."""
    cert, key, ca = load_cert(cert_path), load_key(key_path), load_cert(ca_path)
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(serialization.Encoding.DER, pub) != key.public_key().public_bytes(
        serialization.Encoding.DER, pub
    ):
        raise UsageError(f"--cert {cert_path} and --key {key_path} do not belong together")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise UsageError(f"--cert {cert_path} is not signed by --ca {ca_path}") from exc


def tls_files(
    directory: Path,
    names: list[str],
    *,
    ca: Path | None = None,
    ca_key: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
) -> TLSFiles:
    """The CA, certificate and key to serve with: given ones (checked), or issued here."""
    if (cert is None) != (key is None):
        raise UsageError("give --cert and --key together")
    if cert is not None and key is not None:
        if ca is None:
            raise UsageError("--cert needs --ca: the CA that signed it, which the hosts will trust")
        check_pair(cert, key, ca)
        return TLSFiles(ca, cert, key, generated_ca=False)
    if (ca is None) != (ca_key is None):
        raise UsageError("give --ca and --ca-key together to issue the server certificate from your CA")
    generated = ca is None
    if ca is None or ca_key is None:
        ca, ca_key = make_ca(directory)
    c, k = issue_server(directory, ca, ca_key, names)
    return TLSFiles(ca, c, k, generated_ca=generated)
