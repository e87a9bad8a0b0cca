"""Unit tests of key and certificate making (``dockyard.tls.certificates``) and of what
``dockyard.tls.inspect`` says clients will think of a certificate."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import pathlib
import re
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from dockyard.tls import certificates, inspect
from dockyard.tls.certificates import CertificateAuthority, CertificateError
from tests.support.clients import run
from tests.support.tools import require_tool
from tests.tls.conftest import now

FINGERPRINT = re.compile(r"^(?:[0-9A-F]{2}:){31}[0-9A-F]{2}$")


def mode(path: pathlib.Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def extension(certificate: x509.Certificate, oid: x509.ObjectIdentifier):
    return certificate.extensions.get_extension_for_oid(oid)


def authority(key_type: str = "ecdsa-p256") -> CertificateAuthority:
    key = certificates.generate_key(key_type)
    return CertificateAuthority(certificates.create_ca(key), key)


def bare_certificate(
    *,
    names: list[x509.GeneralName] | None = None,
    key=None,
    not_before: datetime.datetime | None = None,
    days: int = 30,
    algorithm: hashes.HashAlgorithm | None = None,
    common_name: str = "legacy.example.test",
) -> x509.Certificate:
    """A self-issued leaf certificate with only what is asked for (no SAN unless given)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    start = not_before or now() - datetime.timedelta(minutes=5)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
    )
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, algorithm or hashes.SHA256())


# --- keys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "kind", "size"),
    [("ecdsa-p256", ec.EllipticCurvePrivateKey, 256), ("rsa-2048", rsa.RSAPrivateKey, 2048), ("rsa-4096", rsa.RSAPrivateKey, 4096)],
)
def test_generate_key_types(key_type: str, kind: type, size: int) -> None:
    key = certificates.generate_key(key_type)
    assert isinstance(key, kind)
    assert key.key_size == size
    if isinstance(key, ec.EllipticCurvePrivateKey):
        assert isinstance(key.curve, ec.SECP256R1)
    else:
        assert key.public_key().public_numbers().e == 65537


def test_generate_key_refuses_an_unknown_type() -> None:
    with pytest.raises(ValueError, match="unknown key type"):
        certificates.generate_key("dsa-1024")


def test_keys_are_written_mode_0600_and_read_back(tmp_path: pathlib.Path) -> None:
    key = certificates.generate_key()
    path = tmp_path / "deeper" / "server.key"
    certificates.write_key(path, key)
    assert mode(path) == 0o600
    assert b"BEGIN PRIVATE KEY" in path.read_bytes()  # PKCS#8, unencrypted
    loaded = certificates.load_key(path)
    assert loaded.private_numbers() == key.private_numbers()
    # Rewriting keeps the mode (a new file replaces the old one atomically) and leaves no temporary file.
    certificates.write_key(path, certificates.generate_key())
    assert mode(path) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["server.key"]


def test_key_mode_does_not_depend_on_umask(tmp_path: pathlib.Path) -> None:
    import os

    previous = os.umask(0)
    try:
        certificates.write_key(tmp_path / "a.key", certificates.generate_key())
    finally:
        os.umask(previous)
    assert mode(tmp_path / "a.key") == 0o600


def test_certificates_are_written_world_readable(tmp_path: pathlib.Path) -> None:
    ca = authority()
    certificates.write_certificates(tmp_path / "ca.crt", ca.certificate)
    assert mode(tmp_path / "ca.crt") == 0o644
    assert certificates.load_certificates(tmp_path / "ca.crt") == [ca.certificate]


def test_encrypted_key_needs_its_passphrase(tmp_path: pathlib.Path) -> None:
    key = certificates.generate_key()
    path = tmp_path / "locked.key"
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret passphrase"),
    ))
    with pytest.raises(CertificateError, match="passphrase"):
        certificates.load_key(path)
    with pytest.raises(CertificateError, match="wrong passphrase"):
        certificates.load_key(path, b"not it")
    assert certificates.load_key(path, b"s3cret passphrase").private_numbers() == key.private_numbers()


def test_load_key_errors_name_the_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(CertificateError, match="cannot read key .*missing.key"):
        certificates.load_key(tmp_path / "missing.key")
    (tmp_path / "junk.key").write_text("not a key\n")
    with pytest.raises(CertificateError, match="junk.key is not a PEM private key"):
        certificates.load_key(tmp_path / "junk.key")


def test_load_certificates_reads_pem_chains_and_der(tmp_path: pathlib.Path) -> None:
    ca = authority()
    leaf = ca.issue(certificates.generate_key(), ["registry.example.test"])
    certificates.write_certificates(tmp_path / "chain.pem", leaf, ca.certificate)
    assert certificates.load_certificates(tmp_path / "chain.pem") == [leaf, ca.certificate]
    (tmp_path / "leaf.der").write_bytes(leaf.public_bytes(serialization.Encoding.DER))
    assert certificates.load_certificates(tmp_path / "leaf.der") == [leaf]
    (tmp_path / "junk.crt").write_text("junk\n")
    with pytest.raises(CertificateError, match="holds no PEM or DER certificate"):
        certificates.load_certificates(tmp_path / "junk.crt")


# --- the CA -------------------------------------------------------------------


@pytest.mark.parametrize("key_type", certificates.KEY_TYPES)
def test_ca_certificate(key_type: str) -> None:
    key = certificates.generate_key(key_type)
    ca = certificates.create_ca(key, days=100)
    assert ca.subject == ca.issuer
    ca.verify_directly_issued_by(ca)  # self-signed with its own key
    assert ca.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == \
        key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    constraints = extension(ca, ExtensionOID.BASIC_CONSTRAINTS)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = extension(ca, ExtensionOID.KEY_USAGE)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert isinstance(ca.signature_hash_algorithm, hashes.SHA256)
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert datetime.timedelta(days=100) <= lifetime <= datetime.timedelta(days=100, minutes=10)
    assert ca.not_valid_before_utc <= now()
    assert inspect.is_ca(ca)
    assert inspect.problems(ca) == []


def test_each_ca_has_its_own_name() -> None:
    """Two local CAs must not share a subject, or a client could confuse their chains."""
    key = certificates.generate_key()
    assert certificates.create_ca(key).subject != certificates.create_ca(key).subject


# --- leaf certificates --------------------------------------------------------


@pytest.mark.parametrize("ca_key_type", certificates.KEY_TYPES)
@pytest.mark.parametrize("leaf_key_type", certificates.KEY_TYPES)
def test_server_certificate(ca_key_type: str, leaf_key_type: str) -> None:
    ca = authority(ca_key_type)
    key = certificates.generate_key(leaf_key_type)
    leaf = ca.issue(key, ["registry.example.test", "10.1.2.3", "localhost", "::1", "registry.example.test"], days=90)

    leaf.verify_directly_issued_by(ca.certificate)
    assert leaf.issuer == ca.certificate.subject
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "registry.example.test"
    san = extension(leaf, ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert san.get_values_for_type(x509.DNSName) == ["registry.example.test", "localhost"]  # duplicates once
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3"), ipaddress.ip_address("::1")]
    assert inspect.subject_alternative_names(leaf) == ["registry.example.test", "localhost", "10.1.2.3", "::1"]

    constraints = extension(leaf, ExtensionOID.BASIC_CONSTRAINTS)
    assert constraints.critical and not constraints.value.ca
    assert not inspect.is_ca(leaf)
    assert list(extension(leaf, ExtensionOID.EXTENDED_KEY_USAGE).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    usage = extension(leaf, ExtensionOID.KEY_USAGE).value
    assert usage.digital_signature and not usage.key_cert_sign
    # RSA key exchange needs keyEncipherment; an ECDSA key must not claim it.
    assert usage.key_encipherment == leaf_key_type.startswith("rsa")
    assert extension(leaf, ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value.key_identifier == \
        extension(ca.certificate, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime == datetime.timedelta(days=90)
    assert leaf.not_valid_before_utc <= now() < leaf.not_valid_after_utc
    assert inspect.problems(leaf) == []


def test_client_certificate_has_client_auth_only() -> None:
    ca = authority()
    leaf = ca.issue(certificates.generate_key(), ["ci-runner"], client=True)
    assert list(extension(leaf, ExtensionOID.EXTENDED_KEY_USAGE).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    server = ca.issue(certificates.generate_key(), ["ci-runner"])
    assert ExtendedKeyUsageOID.CLIENT_AUTH not in extension(server, ExtensionOID.EXTENDED_KEY_USAGE).value


def test_issue_needs_a_name() -> None:
    with pytest.raises(ValueError, match="at least one name"):
        authority().issue(certificates.generate_key(), [])


def test_issue_with_an_explicit_validity_window() -> None:
    start = now() - datetime.timedelta(days=10)
    leaf = authority().issue(certificates.generate_key(), ["old.example.test"], not_before=start, days=3)
    assert leaf.not_valid_before_utc == start.replace(microsecond=0)
    assert leaf.not_valid_after_utc == (start + datetime.timedelta(days=3)).replace(microsecond=0)


# --- fingerprints -------------------------------------------------------------


def test_fingerprint_format() -> None:
    ca = authority().certificate
    printed = certificates.fingerprint(ca)
    assert FINGERPRINT.match(printed), printed
    assert printed.replace(":", "").lower() == hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest()


def test_fingerprint_is_what_openssl_prints(tmp_path: pathlib.Path) -> None:
    openssl = require_tool("openssl")["openssl"]
    ca = authority().certificate
    certificates.write_certificates(tmp_path / "ca.crt", ca)
    output = run([openssl, "x509", "-in", tmp_path / "ca.crt", "-noout", "-fingerprint", "-sha256"]).stdout
    assert output.strip().split("=", 1)[1] == certificates.fingerprint(ca)


@pytest.mark.parametrize("spelling", [
    lambda f: f,
    lambda f: f.replace(":", ""),
    lambda f: f.replace(":", "").lower(),
    lambda f: "sha256:" + f.lower(),
    lambda f: "  " + f.replace(":", " ") + "\n",
])
def test_normalize_fingerprint_accepts_usual_spellings(spelling) -> None:
    printed = certificates.fingerprint(authority().certificate)
    assert certificates.normalize_fingerprint(spelling(printed)) == printed


def test_normalize_fingerprint_keeps_other_text_different() -> None:
    printed = certificates.fingerprint(authority().certificate)
    assert certificates.normalize_fingerprint(printed[:-3]) != printed
    assert certificates.normalize_fingerprint("zz" * 32) != printed


# --- inspect.problems ---------------------------------------------------------


def test_no_san_is_a_problem() -> None:
    found = inspect.problems(bare_certificate())
    assert len(found) == 1
    assert "no subjectAltName" in found[0] and "common name" in found[0].lower()


def test_expired_is_a_problem() -> None:
    leaf = authority().issue(certificates.generate_key(), ["old.example.test"], not_before=now() - datetime.timedelta(days=40), days=30)
    found = inspect.problems(leaf)
    assert len(found) == 1 and found[0].startswith("expired on "), found
    assert f"{leaf.not_valid_after_utc:%Y-%m-%d}" in found[0]


def test_not_yet_valid_is_a_problem() -> None:
    leaf = authority().issue(certificates.generate_key(), ["new.example.test"], not_before=now() + datetime.timedelta(days=2))
    found = inspect.problems(leaf)
    assert len(found) == 1 and found[0].startswith("not valid before "), found
    # ... and no longer one once its time has come.
    assert inspect.problems(leaf, now=now() + datetime.timedelta(days=3)) == []


def test_weak_rsa_key_is_a_problem() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    leaf = authority().issue(weak, ["weak.example.test"])
    found = inspect.problems(leaf)
    assert len(found) == 1 and "1024" in found[0] and "2048" in found[0], found
    assert inspect.problems(authority().issue(certificates.generate_key("rsa-2048"), ["ok.example.test"])) == []


def test_sha1_signature_is_a_problem(tmp_path: pathlib.Path) -> None:
    # cryptography will not sign with SHA-1 any more: openssl still does.
    openssl = require_tool("openssl")["openssl"]
    run([
        openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-sha1",
        "-subj", "/CN=sha1.example.test", "-addext", "subjectAltName=DNS:sha1.example.test", "-days", "2",
        "-keyout", tmp_path / "sha1.key", "-out", tmp_path / "sha1.crt",
    ])
    certificate = certificates.load_certificates(tmp_path / "sha1.crt")[0]
    assert isinstance(certificate.signature_hash_algorithm, hashes.SHA1)
    found = inspect.problems(certificate)
    assert len(found) == 1 and "SHA1" in found[0], found


def test_several_problems_are_all_listed() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    found = inspect.problems(bare_certificate(key=weak, not_before=now() - datetime.timedelta(days=60), days=1))
    assert [p.split()[0] for p in found] == ["expired", "no", "RSA"], found


def test_describe_warns_about_a_cn_only_certificate() -> None:
    text = inspect.describe(bare_certificate(common_name="legacy.example.test"))
    assert "names (SAN): (none)" in text
    assert "common name: legacy.example.test" in text
    assert "warning:     no subjectAltName" in text
    assert "accepted by current clients" not in text
    good = inspect.describe(authority().issue(certificates.generate_key(), ["ok.example.test", "127.0.0.1"]))
    assert "names (SAN): ok.example.test, 127.0.0.1" in good
    assert "warning" not in good and "accepted by current clients" in good


# --- inspect.matches_host -----------------------------------------------------


def test_matches_host_names_and_addresses() -> None:
    leaf = authority().issue(certificates.generate_key(), ["Registry.Example.test", "10.0.0.7", "::1"])
    assert inspect.matches_host(leaf, "registry.example.test")
    assert inspect.matches_host(leaf, "REGISTRY.example.TEST")
    assert inspect.matches_host(leaf, "10.0.0.7")
    assert inspect.matches_host(leaf, "::1")
    assert inspect.matches_host(leaf, "[::1]")
    assert inspect.matches_host(leaf, "0:0:0:0:0:0:0:1")  # the same address, spelt out
    assert not inspect.matches_host(leaf, "other.example.test")
    assert not inspect.matches_host(leaf, "example.test")
    assert not inspect.matches_host(leaf, "10.0.0.8")
    assert not inspect.matches_host(leaf, "127.0.0.1")


def test_an_address_is_not_matched_by_a_dns_name() -> None:
    leaf = authority().issue(certificates.generate_key(), ["registry.example.test"])
    assert not inspect.matches_host(leaf, "127.0.0.1")
    # a DNS SAN that spells an address does not cover the address (clients need an IP SAN)
    spelt = bare_certificate(names=[x509.DNSName("127.0.0.1")])
    assert not inspect.matches_host(spelt, "127.0.0.1")


def test_matches_host_wildcards_cover_one_label() -> None:
    leaf = authority().issue(certificates.generate_key(), ["*.example.test"])
    assert inspect.matches_host(leaf, "registry.example.test")
    assert inspect.matches_host(leaf, "REGISTRY.Example.Test")
    assert not inspect.matches_host(leaf, "a.registry.example.test")
    assert not inspect.matches_host(leaf, "example.test")
    assert not inspect.matches_host(leaf, "registry.other.test")


def test_matches_host_wildcard_never_covers_the_bare_name() -> None:
    leaf = authority().issue(certificates.generate_key(), ["*.internal"])
    assert inspect.matches_host(leaf, "registry.internal")
    assert not inspect.matches_host(leaf, "internal")


def test_matches_host_ignores_the_common_name() -> None:
    assert not inspect.matches_host(bare_certificate(common_name="legacy.example.test"), "legacy.example.test")
