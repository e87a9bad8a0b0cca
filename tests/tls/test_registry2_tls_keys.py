"""registry:2's ``http.tls`` keys, each given to ``dockyard serve --config``: ``minimumtls``,
``ciphersuites``, registry:3's ``clientauth`` and several ``clientcas``. Each is honoured as
registry:2 honours it, or refused at start in one line naming it; clients are Python's ssl."""

from __future__ import annotations

import pathlib
import ssl
from collections.abc import Callable

import pytest
import yaml

from dockyard.tls.certificates import CertificateAuthority
from tests.tls.conftest import (
    StartServer,
    TlsServer,
    assert_one_line_error,
    client_context,
    https_get,
    issue_files,
    make_ca,
    plain_tls_server,
    serve_and_fail,
    server_context,
)

WriteConfig = Callable[..., pathlib.Path]
Pair = tuple[pathlib.Path, pathlib.Path]  # a certificate and its key
REFUSED = (ssl.SSLError, ConnectionError)


@pytest.fixture
def write_config(tmp_path: pathlib.Path, ca: CertificateAuthority) -> WriteConfig:
    """A registry:2 config.yml serving a certificate for 127.0.0.1 from ``ca``, with these ``http.tls`` keys."""

    def write(**tls: object) -> pathlib.Path:
        certificate, key = issue_files(ca, tmp_path / "ca", "server", ["127.0.0.1"])
        settings = {
            "version": 0.1,
            "storage": {"filesystem": {"rootdirectory": str(tmp_path / "root")}},
            "http": {"addr": "127.0.0.1:0", "tls": {"certificate": str(certificate), "key": str(key), **tls}},
        }
        path = tmp_path / "config.yml"
        path.write_text(yaml.safe_dump(settings))
        return path

    return write


def start_with(start_server: StartServer, config: pathlib.Path, client_cert: Pair | None = None) -> TlsServer:
    return start_server("--config", str(config), trust=config.parent / "ca" / "ca.crt", client_cert=client_cert)


def client(server: TlsServer, cert: Pair | None = None) -> ssl.SSLContext:
    assert isinstance(server.trust, pathlib.Path)
    return client_context(server.trust, cert=cert)


def tls12_only(server: TlsServer, ciphers: str | None = None, cert: Pair | None = None) -> ssl.SSLContext:
    context = client(server, cert)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers is not None:
        context.set_ciphers(ciphers)
    return context


def refused_at_start(tmp_path: pathlib.Path, config: pathlib.Path, *expected: str) -> str:
    return assert_one_line_error(serve_and_fail(tmp_path, "--config", str(config)), *expected)


# --- minimumtls ---------------------------------------------------------------


def test_minimumtls_tls13_refuses_a_tls12_handshake(start_server: StartServer, write_config: WriteConfig) -> None:
    server = start_with(start_server, write_config(minimumtls="tls1.3"))
    with pytest.raises(REFUSED):
        https_get(server.port, tls12_only(server))
    assert https_get(server.port, client(server))[2] == "TLSv1.3"


def test_minimumtls_below_the_floor_is_raised_with_a_warning(start_server: StartServer, write_config: WriteConfig, tmp_path: pathlib.Path) -> None:
    server = start_with(start_server, write_config(minimumtls="tls1.0"))
    assert "warning: http.tls.minimumtls: tls1.0 raised to tls1.2" in server.output()
    assert https_get(server.port, tls12_only(server))[:3:2] == (200, "TLSv1.2")
    with pytest.warns(DeprecationWarning):
        old = client_context(tmp_path / "ca" / "ca.crt", version=ssl.TLSVersion.TLSv1_1)
    # Control: this client speaks TLS 1.1 to a server that allows it ...
    certificate, key = tmp_path / "ca" / "server.crt", tmp_path / "ca" / "server.key"
    with plain_tls_server(server_context(certificate, key, minimum=ssl.TLSVersion.MINIMUM_SUPPORTED)) as port:
        try:
            https_get(port, old)
        except ssl.SSLError as error:
            pytest.skip(f"this OpenSSL cannot speak TLS 1.1 at all ({error}): nothing to show")
    # ... but not to Dockyard, whatever the file says.
    with pytest.raises(REFUSED):
        https_get(server.port, old)


def test_minimumtls_unknown_is_refused(write_config: WriteConfig, tmp_path: pathlib.Path) -> None:
    refused_at_start(tmp_path, write_config(minimumtls="ssl3"), "http.tls.minimumtls", "ssl3")


# --- ciphersuites -------------------------------------------------------------


def test_ciphersuites_limit_tls12(start_server: StartServer, write_config: WriteConfig) -> None:
    server = start_with(start_server, write_config(ciphersuites=["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256"]))
    assert "TLS 1.3 suites are not configurable" in server.output()
    with pytest.raises(REFUSED):  # a suite dockyard serves by default, not listed
        https_get(server.port, tls12_only(server, "ECDHE-ECDSA-AES128-GCM-SHA256"))
    assert https_get(server.port, tls12_only(server, "ECDHE-ECDSA-AES256-GCM-SHA384"))[0] == 200
    assert https_get(server.port, client(server))[2] == "TLSv1.3"


def test_ciphersuites_of_tls13_alone_refuse_tls12(start_server: StartServer, write_config: WriteConfig) -> None:
    server = start_with(start_server, write_config(ciphersuites=["TLS_AES_256_GCM_SHA384"]))
    assert "names no TLS 1.2 suite, so TLS 1.2 is refused" in server.output()
    with pytest.raises(REFUSED):
        https_get(server.port, tls12_only(server))
    assert https_get(server.port, client(server))[2] == "TLSv1.3"


@pytest.mark.parametrize(
    ("suite", "why"),
    [
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "CBC"),
        ("TLS_RSA_WITH_AES_128_GCM_SHA256", "forward secrecy"),
        ("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "3DES"),
        ("TLS_RSA_WITH_RC4_128_SHA", "RC4"),
        ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM", "not a cipher suite"),
    ],
)
def test_weak_or_unknown_ciphersuites_are_refused_at_start(write_config: WriteConfig, tmp_path: pathlib.Path, suite: str, why: str) -> None:
    config = write_config(ciphersuites=["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", suite])
    refused_at_start(tmp_path, config, "http.tls.ciphersuites.1", suite, why)


# --- clientauth and clientcas -------------------------------------------------


@pytest.fixture
def clients(tmp_path: pathlib.Path) -> dict[str, tuple[pathlib.Path, pathlib.Path]]:
    """Client certificates from two client CAs (``first``, ``second``) and from a CA no server trusts (``stranger``)."""
    made = {}
    for name in ("first", "second", "stranger"):
        directory = tmp_path / f"{name}-ca"
        directory.mkdir()
        made[name] = issue_files(make_ca(directory), directory, "client", [f"{name}-client"], client=True)
    return made


def _client_ca(tmp_path: pathlib.Path, name: str) -> str:
    return str(tmp_path / f"{name}-ca" / "ca.crt")


def test_several_clientcas_are_all_trusted(start_server: StartServer, write_config: WriteConfig, clients: dict[str, Pair], tmp_path: pathlib.Path) -> None:
    config = write_config(clientcas=[_client_ca(tmp_path, "first"), _client_ca(tmp_path, "second")])
    server = start_with(start_server, config, client_cert=clients["first"])
    for name in ("first", "second"):
        assert https_get(server.port, client(server, clients[name]))[0] == 200
        assert https_get(server.port, tls12_only(server, cert=clients[name]))[0] == 200
    for refused in (client(server, clients["stranger"]), client(server)):
        with pytest.raises(REFUSED):
            https_get(server.port, refused)


@pytest.mark.parametrize("clientauth", [None, "require-and-verify-client-cert"])
def test_clientauth_require_and_verify(
    start_server: StartServer, write_config: WriteConfig, clients: dict[str, Pair], tmp_path: pathlib.Path, clientauth: str | None,
) -> None:
    keys = {"clientauth": clientauth} if clientauth else {}
    server = start_with(start_server, write_config(clientcas=[_client_ca(tmp_path, "first")], **keys), client_cert=clients["first"])
    assert https_get(server.port, client(server, clients["first"]))[0] == 200
    for refused in (client(server, clients["stranger"]), client(server), tls12_only(server)):
        with pytest.raises(REFUSED):
            https_get(server.port, refused)


def test_clientauth_verify_if_given(start_server: StartServer, write_config: WriteConfig, clients: dict[str, Pair], tmp_path: pathlib.Path) -> None:
    config = write_config(clientcas=[_client_ca(tmp_path, "first")], clientauth="verify-client-cert-if-given")
    server = start_with(start_server, config)
    for context in (client(server), tls12_only(server), client(server, clients["first"])):
        assert https_get(server.port, context)[0] == 200
    for refused in (client(server, clients["stranger"]), tls12_only(server, cert=clients["stranger"])):
        with pytest.raises(REFUSED):
            https_get(server.port, refused)


def test_clientauth_request_admits_every_client(start_server: StartServer, write_config: WriteConfig, clients: dict[str, Pair], tmp_path: pathlib.Path) -> None:
    # Go asks for a certificate and checks none: with one from any CA, or without, a client gets in.
    config = write_config(clientcas=[_client_ca(tmp_path, "first")], clientauth="request-client-cert")
    server = start_with(start_server, config)
    for cert in (None, clients["first"], clients["stranger"]):
        assert https_get(server.port, client(server, cert))[0] == 200
        assert https_get(server.port, tls12_only(server, cert=cert))[0] == 200


def test_clientauth_that_cannot_be_honoured_is_refused(write_config: WriteConfig, tmp_path: pathlib.Path, clients: dict[str, Pair]) -> None:
    config = write_config(clientcas=[_client_ca(tmp_path, "first")], clientauth="require-any-client-cert")
    refused_at_start(tmp_path, config, "http.tls.clientauth", "require-any-client-cert", "cannot be honoured")
    refused_at_start(tmp_path, write_config(clientauth="verify-client-cert-if-given"), "http.tls.clientauth", "needs http.tls.clientcas")
    refused_at_start(tmp_path, write_config(clientcas=[_client_ca(tmp_path, "first")], clientauth="no-client-cert"), "http.tls.clientauth")
