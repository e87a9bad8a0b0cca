"""``dockyard proxy-config nginx``: the text for each option combination, and ``nginx -t`` on it."""

from __future__ import annotations

import itertools
import pathlib
import re

import pytest
from click.testing import CliRunner, Result

from dockyard.cli import main
from dockyard.proxy_config import NginxSite, ProxyConfigError, render_nginx
from tests.proxy import NGINX, nginx_test, write_nginx_conf
from tests.support.tools import require_tool

COMMON = [
    "client_max_body_size 0;",
    "proxy_request_buffering off;",
    "proxy_buffering off;",
    "chunked_transfer_encoding on;",
    "proxy_read_timeout 900s;",
    "proxy_send_timeout 900s;",
    "proxy_http_version 1.1;",
    "proxy_set_header Host $http_host;",
    "proxy_set_header X-Forwarded-Proto $scheme;",
    "proxy_set_header X-Forwarded-Host $http_host;",
    "proxy_set_header X-Forwarded-Port $server_port;",
    "proxy_set_header X-Real-IP $remote_addr;",
    "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["proxy-config", "nginx", *args])


def directives(text: str) -> list[str]:
    """Every directive line, stripped, comments dropped."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def block(text: str, opening: str) -> str:
    """The body of the block that starts with ``opening`` (braces balanced)."""
    start = text.index(opening + " {")
    depth, position = 0, start
    while True:
        char = text[position]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[text.index("{", start) + 1 : position]
        position += 1


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A CA and a certificate for 127.0.0.1 made by ``dockyard certs``."""
    directory = tmp_path_factory.mktemp("proxy-certs")
    runner = CliRunner()
    for args in (["certs", "ca", "--dir", str(directory)], ["certs", "issue", "127.0.0.1", "localhost", "--dir", str(directory)]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
    (directory / "htpasswd").write_text("user:$2y$05$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01\n")
    return directory


def test_defaults_plain_http_with_a_warning() -> None:
    result = invoke("--server-name", "registry.example.com")
    assert result.exit_code == 0, result.output
    text = result.output
    lines = directives(text)
    for expected in COMMON:
        assert expected in lines, expected
    assert "listen 443;" in lines
    assert "server_name registry.example.com;" in lines
    assert "server 127.0.0.1:5000;" in block(text, "upstream dockyard_registry_example_com")
    assert "proxy_pass http://dockyard_registry_example_com;" in lines
    assert re.search(r"#.*TLS MUST then be terminated elsewhere", text)
    assert not any(line.startswith(("ssl_", "proxy_ssl", "auth_basic_user_file")) for line in lines)
    assert [line for line in lines if line.startswith("auth_basic ")] == ["auth_basic off;", "auth_basic off;"]
    assert 'proxy_set_header Authorization "";' not in lines
    assert "add_header" not in text
    # Unauthenticated pings, answered without touching the registry.
    for location in ("location = /_ping", "location = /v1/_ping"):
        body = directives(block(text, location))
        assert "auth_basic off;" in body and any(line.startswith("return 200") for line in body)


def test_tls_at_nginx() -> None:
    result = invoke("--server-name", "r.example", "--listen", "8443", "--tls-cert", "/etc/ssl/r.crt", "--tls-key", "/etc/ssl/r.key")
    assert result.exit_code == 0, result.output
    lines = directives(result.output)
    assert "listen 8443 ssl;" in lines
    assert "ssl_certificate /etc/ssl/r.crt;" in lines
    assert "ssl_certificate_key /etc/ssl/r.key;" in lines
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in lines
    assert "TLS MUST" not in result.output
    for expected in COMMON:
        assert expected in lines, expected


def test_auth_at_proxy() -> None:
    result = invoke("--server-name", "r.example", "--auth-at-proxy", "/etc/nginx/dockyard.htpasswd")
    assert result.exit_code == 0, result.output
    text = result.output
    v2 = directives(block(text, "location /v2/"))
    assert 'auth_basic "Dockyard";' in v2
    assert "auth_basic_user_file /etc/nginx/dockyard.htpasswd;" in v2
    header = [line for line in v2 if line.startswith("add_header Docker-Distribution-Api-Version")]
    assert len(header) == 1 and header[0].endswith(" always;")
    # The value is registry/2.0 unless Dockyard sent its own (no duplicate header).
    variable = header[0].split()[2]
    mapping = directives(block(text, f"map $upstream_http_docker_distribution_api_version {variable}"))
    assert mapping == ["'' 'registry/2.0';"]
    assert 'proxy_set_header Authorization "";' in directives(text)
    # Pings stay open; everything else needs the password too.
    assert "auth_basic off;" in directives(block(text, "location = /_ping"))
    assert "auth_basic off;" in directives(block(text, "location = /v1/_ping"))
    assert "auth_basic_user_file /etc/nginx/dockyard.htpasswd;" in directives(block(text, "location /"))


def test_upstream_tls_with_a_host_name() -> None:
    result = invoke("--server-name", "r.example", "--upstream", "dockyard.internal:5443", "--upstream-tls", "/srv/dockyard-tls/ca.crt")
    assert result.exit_code == 0, result.output
    lines = directives(result.output)
    assert "server dockyard.internal:5443;" in lines
    assert "proxy_pass https://dockyard_r_example;" in lines
    assert "proxy_ssl_trusted_certificate /srv/dockyard-tls/ca.crt;" in lines
    assert "proxy_ssl_verify on;" in lines
    assert "proxy_ssl_server_name on;" in lines
    assert "proxy_ssl_name dockyard.internal;" in lines
    assert not any(line.startswith("proxy_pass http://") for line in lines)


def test_upstream_tls_to_an_ip_address() -> None:
    # nginx checks proxy_ssl_name against DNS names only: loopback becomes localhost
    # (in every certificate `dockyard serve` makes); other addresses need a name.
    loopback = invoke("--server-name", "r.example", "--upstream-tls", "/ca.crt")
    assert loopback.exit_code == 0, loopback.output
    assert "proxy_ssl_name localhost;" in directives(loopback.output)
    named = invoke("--server-name", "r.example", "--upstream", "10.0.0.5:5000", "--upstream-tls", "/ca.crt", "--upstream-tls-name", "registry.lan")
    assert named.exit_code == 0, named.output
    assert "proxy_ssl_name registry.lan;" in directives(named.output)
    refused = invoke("--server-name", "r.example", "--upstream", "10.0.0.5:5000", "--upstream-tls", "/ca.crt")
    assert refused.exit_code != 0 and "--upstream-tls-name" in refused.output


def test_listen_address_and_ipv6_upstream() -> None:
    result = invoke("--server-name", "r.example", "--listen", "127.0.0.1:8080", "--upstream", "[::1]:5000")
    assert result.exit_code == 0, result.output
    lines = directives(result.output)
    assert "listen 127.0.0.1:8080;" in lines
    assert "server [::1]:5000;" in lines


def test_paths_are_made_absolute_and_quoted(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("--server-name", "r.example", "--auth-at-proxy", "my users.htpasswd")
    assert result.exit_code == 0, result.output
    assert f'auth_basic_user_file "{tmp_path}/my users.htpasswd";' in directives(result.output)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--server-name", "r.example", "--tls-cert", "/a.crt"], "go together"),
        (["--server-name", "r.example", "--tls-key", "/a.key"], "go together"),
        (["--server-name", "r;example"], "server name"),
        (["--server-name", "r.example", "--upstream", "nohost"], "HOST:PORT"),
        (["--server-name", "r.example", "--upstream", "h:99999"], "port"),
        (["--server-name", "r.example", "--listen", "https"], "listen"),
        (["--server-name", "r.example", "--auth-at-proxy", "/x/$user"], "$"),
        (["--server-name", "r.example", "--upstream-tls-name", "a.b"], "--upstream-tls"),
    ],
)
def test_refused(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_server_name_is_required() -> None:
    assert invoke().exit_code == 2


def test_render_refuses_directly() -> None:
    with pytest.raises(ProxyConfigError):
        render_nginx(NginxSite("r.example", auth_realm='a"b'))


COMBINATIONS = list(itertools.product([False, True], repeat=3))


@pytest.mark.parametrize("tls, auth, upstream_tls", COMBINATIONS, ids=lambda flag: "on" if flag else "off")
def test_nginx_accepts_the_configuration(
    certs: pathlib.Path, tmp_path: pathlib.Path, tls: bool, auth: bool, upstream_tls: bool
) -> None:
    require_tool(NGINX)
    args = ["--server-name", "registry.example.com localhost", "--listen", "127.0.0.1:8443", "--upstream", "127.0.0.1:5000"]
    if tls:
        args += ["--tls-cert", str(certs / "127.0.0.1.crt"), "--tls-key", str(certs / "127.0.0.1.key")]
    if auth:
        args += ["--auth-at-proxy", str(certs / "htpasswd")]
    if upstream_tls:
        args += ["--upstream-tls", str(certs / "ca.crt")]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    conf = write_nginx_conf(tmp_path / "nginx", result.output)
    checked = nginx_test(conf)
    assert checked.returncode == 0, f"{checked.stderr}\n--- site ---\n{result.output}"
    assert "test is successful" in checked.stderr


def test_nginx_rejects_a_broken_configuration(tmp_path: pathlib.Path) -> None:
    """The check above can fail: nginx -t does refuse a bad site."""
    require_tool(NGINX)
    text = render_nginx(NginxSite("r.example", listen="127.0.0.1:8443")).replace("proxy_buffering off;", "proxy_buffering sideways;")
    checked = nginx_test(write_nginx_conf(tmp_path / "nginx", text))
    assert checked.returncode != 0
