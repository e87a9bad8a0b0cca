"""Making and reading keys and certificates with the ``cryptography`` library.

A CA certificate is self-signed with ``basicConstraints CA:TRUE, pathlen:0``; leaf
certificates carry every name in subjectAltName (modern clients ignore the common
name) and the right extended key usage for a server or a client.
"""

from __future__ import annotations

import datetime
import ipaddress
import pathlib
import uuid
from dataclasses import dataclass
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dockyard.atomic import write_file
from dockyard.tls.errors import CertificateError

KEY_TYPES = ("ecdsa-p256", "rsa-2048", "rsa-4096")
CA_DAYS = 3650
LEAF_DAYS = 365

PrivateKey = CertificateIssuerPrivateKeyTypes


def generate_key(key_type: str = "ecdsa-p256") -> PrivateKey:
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type in ("rsa-2048", "rsa-4096"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type.split("-")[1]))
    raise ValueError(f"unknown key type {key_type!r}: choose one of {', '.join(KEY_TYPES)}")


def write_key(path: pathlib.Path, key: PrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_file(path, pem, 0o600)


def write_certificates(path: pathlib.Path, *certificates: x509.Certificate) -> None:
    write_file(path, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates))


def load_key(path: pathlib.Path, passphrase: bytes | None = None) -> PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CertificateError(f"cannot read key {path}: {error.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as error:
        if "encrypted" in str(error).lower() and passphrase is None:
            raise CertificateError(
                f"key {path} is protected by a passphrase: give it with --tls-key-passphrase-file or the DOCKYARD_TLS_KEY_PASSPHRASE environment variable",
            ) from None
        raise CertificateError(f"key {path}: {error}") from None
    except ValueError as error:
        if passphrase is not None:
            raise CertificateError(f"key {path}: wrong passphrase or not a PEM private key") from None
        raise CertificateError(f"key {path} is not a PEM private key: {error}") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise CertificateError(f"key {path}: only ECDSA and RSA keys are supported")
    return key


def load_certificates(path: pathlib.Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CertificateError(f"cannot read certificate {path}: {error.strerror}") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        try:
            certificates = [x509.load_der_x509_certificate(data)]
        except ValueError:
            raise CertificateError(f"{path} holds no PEM or DER certificate") from None
    return certificates


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Dockyard"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
    ])


def create_ca(key: PrivateKey, days: int = CA_DAYS, common_name: str = "Dockyard local CA") -> x509.Certificate:
    now = _now()
    subject = _name(f"{common_name} {uuid.uuid4().hex[:8]}")
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


@dataclass(frozen=True)
class CertificateAuthority:
    certificate: x509.Certificate
    key: PrivateKey

    @classmethod
    def load(cls, certificate: pathlib.Path, key: pathlib.Path) -> CertificateAuthority:
        return cls(load_certificates(certificate)[0], load_key(key))

    def issue(
        self,
        key: PrivateKey,
        names: list[str],
        *,
        days: int = LEAF_DAYS,
        client: bool = False,
        not_before: datetime.datetime | None = None,
    ) -> x509.Certificate:
        """A leaf certificate for ``names`` (DNS names or IP addresses)."""
        if not names:
            raise ValueError("a certificate needs at least one name")
        now = not_before or _now() - datetime.timedelta(minutes=5)
        public = key.public_key()
        alternative: list[x509.GeneralName] = []
        for name in dict.fromkeys(names):
            try:
                alternative.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alternative.append(x509.DNSName(name))
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        return (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.certificate.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                    key_cert_sign=False, crl_sign=False, content_commitment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                # A CA certificate's key signs, so it is one of the issuer key types.
                x509.AuthorityKeyIdentifier.from_issuer_public_key(cast(CertificateIssuerPublicKeyTypes, self.certificate.public_key())),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )


def fingerprint(certificate: x509.Certificate) -> str:
    """The SHA-256 fingerprint as colon-separated upper-case hex, as openssl prints it."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def normalize_fingerprint(text: str) -> str:
    compact = text.strip().lower().removeprefix("sha256:").replace(":", "").replace(" ", "")
    try:
        return bytes.fromhex(compact).hex(":").upper() if len(compact) == 64 else text.strip().upper()
    except ValueError:
        return text.strip().upper()
