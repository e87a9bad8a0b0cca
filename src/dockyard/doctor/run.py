"""All checks in the order a client meets the registry; a check that fails stops those that need it."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import httpx
from cryptography.hazmat.primitives.serialization import Encoding

from dockyard.doctor import certificates, network, push, registry
from dockyard.doctor.machine import Credentials, Machine, TrustStore
from dockyard.doctor.network import Handshake, Target
from dockyard.doctor.results import Check, Outcome, fail, ok, warn

TEST_REPOSITORY = "dockyard-doctor/test"  # the scope asked for when no --push-test repository is given


@dataclass(frozen=True)
class Options:
    target: Target
    machine: Machine
    credentials: Credentials | None = None
    push_repository: str | None = None
    long_request: float = 0  # seconds the push test's slow upload lasts; 0 skips it


def diagnose(options: Options) -> list[Check]:
    target = options.target
    checks: list[Check] = []
    for step in (network.resolve, network.connect):  # each needs the one before
        checks.append(step(target))
        if checks[-1].outcome is Outcome.FAIL:
            return checks

    plain_http = options.machine.plain_http_allowed(target.host_port)
    handshake = network.tls_handshake(target.host, target.port)
    if isinstance(handshake, Handshake):
        checks.append(ok("protocol", f"{handshake.version}; the server sends {len(handshake.chain)} certificate(s)"))
        judgement = certificates.chain_checks(target, handshake.chain, options.machine.trust_stores(target.host_port), plain_http)
        checks += judgement.checks
        trusted = [store for store in judgement.trusted_by if store.client in certificates.CLIENTS]
        certificate_ok = all(check.outcome is not Outcome.FAIL for check in judgement.checks if check.name.startswith("certificate"))
        scheme = "https"
        # The password goes only where a client here would send it: a certificate it accepts.
        verify: ssl.SSLContext = _context(trusted[0]) if trusted and certificate_ok else network.unverified_context()
        send_credentials = bool(trusted) and certificate_ok
    elif network.speaks_plain_http(target.host, target.port):
        checks.append(_plain_http_check(target, plain_http, handshake))
        scheme, verify, send_credentials = "http", network.unverified_context(), True
    else:
        checks.append(fail(
            "protocol", f"{target.host_port} speaks neither TLS ({handshake}) nor HTTP",
            "is it the registry's port? Another service may listen there",
        ))
        return checks

    with registry.new_client(target, scheme, verify) as client:
        found, answer = registry.ping(client, target)
        checks += found
        if answer is None:
            return checks
        found, challenge = registry.challenge_checks(client, target, scheme, answer)
        checks += found + realm_certificate(options.machine, target, challenge)
        # The push test cancels its uploads with DELETE, which registries grant to "delete" only.
        scope = f"repository:{options.push_repository or TEST_REPOSITORY}:{'pull,push,delete' if options.push_repository else 'pull'}"
        header: dict[str, str] | None = {}
        if challenge is not None:
            header = None
            if options.credentials is None:
                checks.append(ok("sign-in", "not tried: no --username, and no saved login for this registry"))
            elif not send_credentials:
                checks.append(warn(
                    "sign-in", "not tried: the password is sent only over a connection whose certificate a client here trusts",
                    "fix the certificate problems above, then run again",
                ))
            else:
                found, header = registry.sign_in(client, challenge, options.credentials, scope)
                checks += found
        if options.push_repository is not None:
            if header is not None:
                checks += push.PushTest(client, target, scheme, options.push_repository, header, options.long_request).run()
            elif options.credentials is None:
                checks.append(fail("push", "not tried: pushing needs a sign-in", "give --username (with --password-stdin) or docker login first"))
            # otherwise the sign-in's failure is named above, and the push test waits for it
    return checks


def _plain_http_check(target: Target, allowed: dict[str, bool], tls_error: str) -> Check:
    refusing = [client for client, plain in allowed.items() if not plain]
    host_port = target.host_port
    if allowed and not refusing:
        return warn(
            "protocol", f"plain HTTP; {', '.join(allowed)} here are configured to use it: images and passwords cross the network in clear",
            "serve TLS (dockyard serve without --insecure-http, or TLS at the proxy)",
        )
    return fail(
        "protocol",
        f"plain HTTP, not TLS ({tls_error}): {', '.join(refusing) or 'docker, podman and skopeo'} will say "
        "'http: server gave HTTP response to HTTPS client'",
        "serve TLS on this port (dockyard serve without --insecure-http, or TLS at the proxy); or declare it insecure on every client: "
        f"docker: \"insecure-registries\": [\"{host_port}\"] in /etc/docker/daemon.json; "
        f"podman/skopeo: [[registry]] location = \"{host_port}\" insecure = true in /etc/containers/registries.conf; "
        f"containerd: server = \"http://{host_port}\" in /etc/containerd/certs.d/{host_port}/hosts.toml",
    )


def _context(store: TrustStore) -> ssl.SSLContext:
    pem = "".join(root.public_bytes(Encoding.PEM).decode() for root in store.roots)
    return ssl.create_default_context(cadata=pem)


def realm_certificate(machine: Machine, target: Target, challenge: registry.Challenge | None) -> list[Check]:
    """A token realm on another address than the registry's: its certificate, judged the same way."""
    if challenge is None or challenge.scheme != "bearer":
        return []
    try:
        realm = httpx.URL(challenge.parameters.get("realm", ""))
    except httpx.InvalidURL:
        return []  # the auth check named it
    if realm.scheme != "https" or not realm.host:
        return []
    realm_target = Target(realm.host, realm.port or 443)
    if realm_target == target:
        return []
    handshake = network.tls_handshake(realm_target.host, realm_target.port)
    if not isinstance(handshake, Handshake):
        return []  # the realm check said it cannot be reached
    judged = certificates.chain_checks(realm_target, handshake.chain, machine.trust_stores(realm_target.host_port), {})
    failures = [check for check in judged.checks if check.outcome is Outcome.FAIL]
    if failures:
        said = "; ".join(f"{check.name}: {check.message}" for check in failures)
        return [fail("auth realm certificate", f"{realm_target.host_port}: {said}", failures[0].fix)]
    return [ok("auth realm certificate", f"{realm_target.host_port}'s certificate is accepted")]
