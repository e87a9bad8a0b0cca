"""The certificate chain a registry sends, judged as Go's crypto/x509 judges it (docker, podman,
skopeo, containerd): names from subjectAltName only, validity, extended key usage, the
intermediates sent, and which of this machine's trust stores lead to a root."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError

from dockyard.doctor.machine import TrustStore
from dockyard.doctor.network import Target
from dockyard.doctor.results import Check, fail, ok, warn
from dockyard.tls import inspect

SOON = datetime.timedelta(days=14)
CLIENTS = ("docker", "podman/skopeo", "containerd")


@dataclass(frozen=True)
class Judgement:
    checks: list[Check]
    trusted_by: list[TrustStore]


def _fix_reissue(target: Target) -> str:
    kind = "IP" if _is_address(target.host) else "DNS"
    return (
        f"issue a certificate whose subjectAltName holds {kind}:{target.host} "
        f"(openssl: -addext 'subjectAltName={kind}:{target.host}'; or dockyard certs issue {target.host})"
    )


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def leaf_checks(target: Target, leaf: x509.Certificate, now: datetime.datetime) -> list[Check]:
    checks = []
    names = inspect.subject_alternative_names(leaf)
    if not names:
        checks.append(fail(
            "certificate name",
            f"no subjectAltName, only the common name {leaf.subject.rfc4514_string()}: "
            "'x509: certificate relies on legacy Common Name field' (Go ignores the common name since 1.15)",
            _fix_reissue(target),
        ))
    elif not inspect.matches_host(leaf, target.host):
        checks.append(fail(
            "certificate name",
            f"'x509: certificate is valid for {', '.join(names)}, not {target.host}'",
            f"use one of those names to reach the registry, or {_fix_reissue(target)}",
        ))
    else:
        checks.append(ok("certificate name", f"subjectAltName covers {target.host}"))

    if leaf.not_valid_after_utc < now:
        checks.append(fail(
            "certificate validity", f"expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: 'x509: certificate has expired'",
            "renew the certificate (dockyard serve renews its own; certbot renew; or issue a new one)",
        ))
    elif leaf.not_valid_before_utc > now:
        checks.append(fail(
            "certificate validity",
            f"not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: 'x509: certificate is not yet valid'",
            "set this machine's clock right (or the issuer's), then retry",
        ))
    elif leaf.not_valid_after_utc - now < SOON:
        checks.append(warn(
            "certificate validity", f"expires on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, in less than {SOON.days} days",
            "renew it before then",
        ))
    else:
        checks.append(ok("certificate validity", f"valid until {leaf.not_valid_after_utc:%Y-%m-%d} UTC"))

    usage_problems = inspect.key_problems(leaf)
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None  # Go accepts a leaf that names no extended usage
    if usages is not None and not {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE} & set(usages):
        usage_problems.append("its extended key usage lacks serverAuth: 'x509: certificate specifies an incompatible key usage'")
    if usage_problems:
        checks.append(fail(
            "certificate key", "; ".join(usage_problems),
            "issue a server certificate (extendedKeyUsage=serverAuth, RSA 2048+ or ECDSA P-256, SHA-256)",
        ))
    else:
        checks.append(ok("certificate key", "key, signature and usage are accepted by Go clients"))
    return checks


def _verify(leaf: x509.Certificate, intermediates: list[x509.Certificate], roots: list[x509.Certificate], at: datetime.datetime) -> str | None:
    """Why no path leads from ``leaf`` to ``roots``, or None. Names, usage and the leaf's own dates
    are checked apart (:func:`leaf_checks`), so each problem is named once."""
    if not roots:
        return "the store is empty"
    builder = (
        PolicyBuilder()
        .store(Store(roots))
        .time(at)
        .extension_policies(
            ca_policy=ExtensionPolicy.permit_all().require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None),
            ee_policy=ExtensionPolicy.permit_all(),
        )
    )
    try:
        builder.build_client_verifier().verify(leaf, intermediates)
    except (VerificationError, ValueError, UnsupportedAlgorithm) as error:  # Go refuses what cryptography cannot read too
        return str(error)
    return None


def chain_checks(target: Target, chain: list[x509.Certificate], stores: list[TrustStore], insecure: dict[str, bool]) -> Judgement:
    now = datetime.datetime.now(datetime.UTC)
    leaf, intermediates = chain[0], chain[1:]
    checks = leaf_checks(target, leaf, now)
    # Judge the path within the leaf's validity: an expired leaf is named above, not once per store.
    at = min(max(now, leaf.not_valid_before_utc + datetime.timedelta(seconds=1)), leaf.not_valid_after_utc - datetime.timedelta(seconds=1))

    all_roots = {root.subject for store in stores for root in store.roots}
    self_signed = leaf.issuer == leaf.subject
    issuer = leaf.issuer.rfc4514_string()
    if self_signed:
        checks.append(ok("certificate chain", "self-signed: clients trust it only where it is installed as a CA"))
    elif any(certificate.subject == leaf.issuer for certificate in intermediates) or leaf.issuer in all_roots:
        checks.append(ok("certificate chain", f"issued by {issuer}; the server sends {len(intermediates)} more certificate(s)"))
    else:
        checks.append(fail(
            "certificate chain",
            f"issued by {issuer}, which the server does not send and no trust store here holds: "
            "Go clients never fetch missing intermediates ('x509: certificate signed by unknown authority')",
            "serve the full chain: the certificate file lists the leaf, then each intermediate (certbot's fullchain.pem, not cert.pem)",
        ))

    trusted_by = []
    ca_name = leaf.subject.rfc4514_string() if self_signed else issuer
    for store in stores:
        problem = _verify(leaf, intermediates, store.roots, at)
        name = f"trust: {store.client}"
        if problem is None:
            trusted_by.append(store)
            checks.append(ok(name, f"chains to a root in {store.where}"))
            continue
        message = f"'x509: certificate signed by unknown authority': {ca_name} is in none of {store.where}"
        fix = _trust_fix(target, store.client)
        if insecure.get(store.client):
            why = "configured insecure" + (", as docker does for 127.0.0.0/8 by default" if store.client == "docker" else "")
            checks.append(warn(name, f"{message}; {store.client} skips verification for {target.host_port} ({why})", fix))
        elif store.client in CLIENTS:
            checks.append(fail(name, message, fix))
        elif len(stores) == 1:  # no container client configured here: the system store is what Go reads
            checks.append(fail(name, message, fix))
        elif any(trusted.client in CLIENTS for trusted in trusted_by):
            # The clients trust it through their own folders, as `dockyard trust` sets them up: not a problem for them.
            checks.append(ok(name, f"{ca_name} is not in {store.where}, which only curl, git and Python need: {fix}"))
        else:
            checks.append(warn(name, f"{message} (curl, git, Python)", fix))
    return Judgement(checks, trusted_by)


def _trust_fix(target: Target, client: str) -> str:
    host_port = target.host_port
    if client == "docker":
        return f"copy the registry's CA to /etc/docker/certs.d/{host_port}/ca.crt (dockyard trust {host_port} --ca CA.crt --docker)"
    if client == "podman/skopeo":
        return f"copy the registry's CA to /etc/containers/certs.d/{host_port}/ca.crt (dockyard trust {host_port} --ca CA.crt --containers)"
    if client == "containerd":
        folder = f"/etc/containerd/certs.d/{host_port}"
        return f"name the CA in {folder}/hosts.toml: [host.\"https://{host_port}\"] ca = \"{folder}/ca.crt\""
    return f"add the CA to the system store (dockyard trust {host_port} --ca CA.crt --system)"
