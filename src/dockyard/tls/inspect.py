"""What clients will think of a certificate: the checks behind ``certs show`` and ``serve``."""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import NameOID

from dockyard.tls.certificates import fingerprint


def subject_alternative_names(certificate: x509.Certificate) -> list[str]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = list(extension.get_values_for_type(x509.DNSName))
    names += [str(address) for address in extension.get_values_for_type(x509.IPAddress)]
    return names


def is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _named_like_a_host(certificate: x509.Certificate) -> bool:
    """A self-signed certificate whose common name is a host name: what ``openssl req -x509
    -subj /CN=HOST`` makes (CA:TRUE by default) to be used as a server certificate."""
    common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if certificate.issuer != certificate.subject or not common_names:
        return False
    name = str(common_names[0].value)
    return " " not in name and ("." in name or ":" in name or name == "localhost")


def _key_description(certificate: x509.Certificate) -> tuple[str, str | None]:
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        weak = f"RSA key of {key.key_size} bits is weak: clients require at least 2048" if key.key_size < 2048 else None
        return f"RSA {key.key_size} bits", weak
    if isinstance(key, ec.EllipticCurvePublicKey):
        weak = f"ECDSA key on {key.curve.name} is weak" if key.curve.key_size < 256 else None
        return f"ECDSA {key.curve.name}", weak
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size} bits", "DSA keys are rejected by current clients"
    return type(key).__name__, None


def problems(certificate: x509.Certificate, now: datetime.datetime | None = None) -> list[str]:
    """Why a client would refuse this certificate (empty when it would not)."""
    now = now or datetime.datetime.now(datetime.UTC)
    found: list[str] = []
    if certificate.not_valid_after_utc < now:
        found.append(f"expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if certificate.not_valid_before_utc > now:
        found.append(f"not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    if (not is_ca(certificate) or _named_like_a_host(certificate)) and not subject_alternative_names(certificate):
        found.append(
            "no subjectAltName: modern clients (Go since 1.15: docker, podman, skopeo) ignore the common "
            "name and reject it ('x509: certificate relies on legacy Common Name field')"
        )
    return found + key_problems(certificate)


def key_problems(certificate: x509.Certificate) -> list[str]:
    """Why a client would refuse the certificate's key or signature."""
    found = []
    _, weak = _key_description(certificate)
    if weak:
        found.append(weak)
    algorithm = certificate.signature_hash_algorithm
    if algorithm is not None and algorithm.name in ("md5", "sha1"):
        found.append(f"signed with {algorithm.name.upper()}, which clients reject")
    return found


def matches_host(certificate: x509.Certificate, host: str) -> bool:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        host = host.lower()
        parent = host.split(".", 1)[1] if "." in host else None  # a wildcard never covers the bare name
        names = extension.get_values_for_type(x509.DNSName)
        return any(name.lower() == host or (name.startswith("*.") and parent == name[2:].lower()) for name in names)
    return address in extension.get_values_for_type(x509.IPAddress)  # clients check an address against IP SANs only


def describe(certificate: x509.Certificate) -> str:
    key, _ = _key_description(certificate)
    common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    lines = [
        f"subject:     {certificate.subject.rfc4514_string()}",
        f"issuer:      {certificate.issuer.rfc4514_string()}",
        f"kind:        {'certificate authority' if is_ca(certificate) else 'leaf certificate'}",
        f"names (SAN): {', '.join(subject_alternative_names(certificate)) or '(none)'}",
        f"valid:       {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} to {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
        f"key:         {key}",
        f"sha256:      {fingerprint(certificate)}",
    ]
    if common_names and not subject_alternative_names(certificate) and not is_ca(certificate):
        lines.append(f"common name: {common_names[0].value!s}")
    found = problems(certificate)
    lines += [f"warning:     {problem}" for problem in found] or ["clients:     accepted by current clients (when they trust its issuer)"]
    return "\n".join(lines)
