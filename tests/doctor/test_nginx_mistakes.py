"""``dockyard doctor`` against an nginx in front of registry:2 made with the seed documents'
mistakes, one server block each, and one without them. Each mistake is named with its fix; the
good server block shows none (nginx's certificates trusted the way docker and podman trust them)."""

from __future__ import annotations

import pathlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.doctor.conftest import Diagnosis, client_machine, run_doctor, trust
from tests.proxy import NginxProcess, nginx_test, write_nginx_conf
from tests.proxy.topologies import PASSWORD, USER, proxy_files
from tests.support.processes import free_port
from tests.support.registry2 import Registry2Process, registry2_binary
from tests.support.tools import require_tool, unavailable

SCRATCH = "doctor/scratch"


@dataclass
class Site:
    port: int
    tls_cert: pathlib.Path
    tls_key: pathlib.Path
    body_limit: str = "0"  # what the seeds write to avoid the 413
    refuse_chunked: bool = False
    forwarded_proto: bool = True
    host_header: str = "$http_host"  # what the client asked for; $proxy_host is the upstream's address
    users: pathlib.Path | None = None  # Basic authentication at nginx, as the seeds set it up
    version_header: bool = True  # on nginx's own 401
    body_timeout: str = "60s"  # nginx's default client_body_timeout: the longest pause between two reads of a body

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def server_block(self, upstream: str) -> str:
        # nginx since 1.3.9 takes chunked request bodies; this rule answers as older nginx (and
        # proxies without chunked support) did.
        refuse = "if ($http_transfer_encoding ~* chunked) { return 411; }" if self.refuse_chunked else ""
        proto = "proxy_set_header X-Forwarded-Proto $scheme;" if self.forwarded_proto else ""
        # nginx's own 401 carries no API version header unless added, as the seeds do.
        auth = (
            f'auth_basic "registry"; auth_basic_user_file {self.users}; '
            + ("add_header Docker-Distribution-Api-Version registry/2.0 always;" if self.version_header else "")
        ) if self.users else ""
        return f"""
server {{
    listen 127.0.0.1:{self.port} ssl;
    server_name 127.0.0.1;
    ssl_certificate {self.tls_cert};
    ssl_certificate_key {self.tls_key};
    client_max_body_size {self.body_limit};
    client_body_timeout {self.body_timeout};
    {refuse}
    location /v2/ {{
        {auth}
        proxy_pass http://{upstream};
        proxy_set_header Host {self.host_header};
        {proto}
        proxy_read_timeout 900;
    }}
}}
"""


@dataclass
class Proxy:
    sites: dict[str, Site]
    machine: pathlib.Path  # trusts each site's certificate as docker and podman would

    def diagnose(self, site: str, *args: str, stdin: str | None = None) -> Diagnosis:
        return run_doctor(self.sites[site].host, self.machine, *args, stdin=stdin)


def common_name_only_certificate(folder: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """The seeds' ``openssl req -x509 -subj /CN=...``: self-signed, no subjectAltName."""
    openssl = require_tool("openssl")["openssl"]
    cert, key = folder / "cn-only.crt", folder / "cn-only.key"
    subprocess.run(
        [openssl, "req", "-x509", "-nodes", "-newkey", "rsa:2048", "-days", "30", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    if registry2_binary() is None:
        unavailable("docker-registry (registry:2) is not installed")
    tmp = tmp_path_factory.mktemp("doctor-nginx")
    nginx_tls, _, users = proxy_files(tmp)
    good_cert, good_key = nginx_tls / "127.0.0.1.crt", nginx_tls / "127.0.0.1.key"
    cn_cert, cn_key = common_name_only_certificate(tmp)
    sites = {
        "healthy": Site(free_port(), good_cert, good_key, users=users),
        "common name only": Site(free_port(), cn_cert, cn_key),
        "body limit": Site(free_port(), good_cert, good_key, body_limit="1m"),
        "no chunked": Site(free_port(), good_cert, good_key, refuse_chunked=True),
        "no forwarded proto": Site(free_port(), good_cert, good_key, forwarded_proto=False),
        "upstream host": Site(free_port(), good_cert, good_key, host_header="$proxy_host"),
        "no version header": Site(free_port(), good_cert, good_key, users=users, version_header=False),
        # Stands in for a proxy whose time limit is shorter than a push over a slow link lasts.
        "short timeout": Site(free_port(), good_cert, good_key, body_timeout="500ms"),
    }
    machine = client_machine(tmp / "client")
    for site in sites.values():
        trust(machine, site.host, cn_cert if site.tls_cert == cn_cert else nginx_tls / "ca.crt")
    with Registry2Process(tmp / "registry") as registry:
        conf = write_nginx_conf(tmp / "nginx", "".join(site.server_block(registry.host) for site in sites.values()))
        checked = nginx_test(conf)
        assert checked.returncode == 0, checked.stderr
        nginx = NginxProcess(conf, sites["healthy"].port).start()
        try:
            yield Proxy(sites, machine)
        finally:
            nginx.stop()


def test_healthy_nginx_in_front_of_registry2_shows_nothing(proxy: Proxy) -> None:
    diagnosis = proxy.diagnose(
        "healthy", "--username", USER, "--password-stdin", "--push-test", SCRATCH, "--long-request", "2", stdin=PASSWORD,
    )
    assert diagnosis.exit_code == 0, diagnosis.output
    assert diagnosis.named("fail") == set(), diagnosis.output
    assert diagnosis.named("warn") == set(), diagnosis.output
    for name in ("certificate name", "api", "auth", "sign-in", "push: streamed chunk", "push: large body", "push: long request", "push: locations"):
        assert diagnosis.outcome(name) == "ok", (name, diagnosis.output)
    assert "Basic" in diagnosis.checks["auth"]["message"]

    wrong = proxy.diagnose("healthy", "--username", USER, "--password-stdin", "--push-test", SCRATCH, stdin="wrong")
    assert wrong.exit_code == 1
    assert wrong.checks["sign-in"]["outcome"] == "fail"
    assert "unauthorized: authentication required" in wrong.checks["sign-in"]["message"]


def test_common_name_only_certificate(proxy: Proxy) -> None:
    diagnosis = proxy.diagnose("common name only")
    assert diagnosis.exit_code == 1
    check = diagnosis.checks["certificate name"]
    assert check["outcome"] == "fail"
    assert "x509: certificate relies on legacy Common Name field" in check["message"]
    assert "subjectAltName" in check["fix"] and "IP:127.0.0.1" in check["fix"]
    # Installed where docker and podman look, the certificate itself is trusted: only its name is wrong.
    assert diagnosis.outcome("trust: docker") == "ok" and diagnosis.outcome("trust: podman/skopeo") == "ok"
    assert diagnosis.named("fail") == {"certificate name"}, diagnosis.output


def test_client_max_body_size_1m(proxy: Proxy) -> None:
    diagnosis = proxy.diagnose("body limit", "--push-test", SCRATCH)
    assert diagnosis.exit_code == 1
    check = diagnosis.checks["push: large body"]
    assert check["outcome"] == "fail"
    assert "413" in check["message"] and "client_max_body_size 0" in check["fix"]
    assert diagnosis.named("fail") == {"push: large body"}, diagnosis.output


def test_chunked_uploads_refused(proxy: Proxy) -> None:
    diagnosis = proxy.diagnose("no chunked", "--push-test", SCRATCH)
    assert diagnosis.exit_code == 1
    check = diagnosis.checks["push: streamed chunk"]
    assert check["outcome"] == "fail"
    assert "411 Length Required" in check["message"] and "chunked" in check["fix"]
    assert diagnosis.named("fail") == {"push: streamed chunk"}, diagnosis.output


def test_proxy_time_limit_shorter_than_a_slow_push(proxy: Proxy) -> None:
    diagnosis = proxy.diagnose("short timeout", "--push-test", SCRATCH, "--long-request", "3")
    assert diagnosis.exit_code == 1
    check = diagnosis.checks["push: long request"]
    assert check["outcome"] == "fail"
    assert "a piece a second for 3 s" in check["message"]
    assert "client_body_timeout" in check["fix"] and "readTimeout" in check["fix"]
    assert diagnosis.named("fail") == {"push: long request"}, diagnosis.output
    # The quick measures pass: only an upload that lasts shows the limit.
    assert diagnosis.outcome("push: large body") == "ok"


def test_proxy_pass_to_plain_http_without_forwarded_proto(proxy: Proxy) -> None:
    site = proxy.sites["no forwarded proto"]
    diagnosis = proxy.diagnose("no forwarded proto", "--push-test", SCRATCH)
    assert diagnosis.exit_code == 1
    check = diagnosis.checks["push: locations"]
    assert check["outcome"] == "fail"
    assert f"http://{site.host}/v2/{SCRATCH}/blobs/uploads/" in check["message"]
    assert "HTTP response to HTTPS client" in check["message"]
    assert "X-Forwarded-Proto $scheme" in check["fix"]
    assert diagnosis.named("fail") == {"push: locations"}, diagnosis.output
    # Without the push test, nothing shows it: the check needs a real upload.
    assert proxy.diagnose("no forwarded proto").exit_code == 0


def test_proxy_pass_with_the_upstreams_host_header(proxy: Proxy) -> None:
    diagnosis = proxy.diagnose("upstream host", "--push-test", SCRATCH)
    assert diagnosis.exit_code == 1
    check = diagnosis.checks["push: locations"]
    assert check["outcome"] == "fail"
    assert f"not {proxy.sites['upstream host'].host}: an address behind the proxy" in check["message"]
    assert "proxy_set_header Host $http_host" in check["fix"]
    assert diagnosis.named("fail") == {"push: locations"}, diagnosis.output


def test_auth_at_nginx_without_the_api_version_header(proxy: Proxy) -> None:
    diagnosis = proxy.diagnose("no version header")
    assert diagnosis.exit_code == 0  # today's clients do without it
    check = diagnosis.checks["api"]
    assert check["outcome"] == "warn"
    assert "answered 401 without 'Docker-Distribution-Api-Version: registry/2.0'" in check["message"]
    assert "add_header Docker-Distribution-Api-Version registry/2.0 always" in check["fix"]
    assert diagnosis.named("warn") == {"api"}, diagnosis.output
