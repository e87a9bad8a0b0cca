"""Real clients sign in as LDAP users: skopeo logs in and pushes, docker logs in and pulls it,
against ``dockyard serve`` in token mode with ``dockyard.ldap`` set in its configuration file."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import pytest
import yaml

from tests.support.clients import Dockerd, Skopeo, layout_blob
from tests.support.images import single_image_layout
from tests.support.ldap import PEOPLE_PASSWORDS, POLICY, Slapd, ldap_settings, start_slapd
from tests.support.server import DockyardProcess

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockyardProcess]:
    base = tmp_path_factory.mktemp("ldapserver")
    slapd: Slapd = start_slapd(base / "slapd")
    policy = base / "policy.yaml"
    policy.write_text(POLICY)
    config = base / "config.yml"
    config.write_text(yaml.safe_dump({
        "version": "0.1",
        "dockyard": {"token_auth": True, "access_policy": str(policy), "ldap": ldap_settings(slapd, url=slapd.tls_url, ca_file=str(slapd.ca_file))},
    }))
    process = DockyardProcess(base / "root", "--config", str(config))
    try:
        process.start()
        yield process
    finally:
        process.stop()
        slapd.stop()


def test_skopeo_and_docker_sign_in_as_directory_users(server: DockyardProcess, skopeo: Skopeo, docker: Dockerd, tmp_path: pathlib.Path) -> None:
    layout = tmp_path / "layout"
    descriptor = single_image_layout(layout, "v1", seed="ldap-clients")
    remote = f"{server.host}/dev/ldap:v1"
    authfile = tmp_path / "auth.json"
    login = ["login", "--tls-verify=false", "--authfile", authfile]

    assert skopeo(*login, "-u", "alice", "-p", "wrong-pw", server.host, check=False).returncode != 0
    assert skopeo(*login, "-u", "*)(uid=*", "-p", PEOPLE_PASSWORDS["alice"], server.host, check=False).returncode != 0
    assert "Login Succeeded" in skopeo(*login, "-u", "alice", "-p", PEOPLE_PASSWORDS["alice"], server.host).stdout
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-authfile", authfile, f"oci:{layout}:v1", f"docker://{remote}")
    # bob (readers) may pull it, not push.
    assert "Login Succeeded" in skopeo(*login, "-u", "bob", "-p", PEOPLE_PASSWORDS["bob"], server.host).stdout
    back = tmp_path / "back"
    skopeo("copy", "--src-tls-verify=false", "--src-authfile", authfile, f"docker://{remote}", f"oci:{back}:v1")
    assert layout_blob(back, descriptor["digest"]) == layout_blob(layout, descriptor["digest"])
    refused = skopeo("copy", "--dest-tls-verify=false", "--dest-authfile", authfile, f"oci:{layout}:v1", f"docker://{server.host}/dev/bob:v1", check=False)
    assert refused.returncode != 0

    config = tmp_path / "docker-config"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"auths": {}}))
    own = ["--config", str(config)]
    assert docker(*own, "login", "-u", "alice", "-p", "wrong-pw", server.host, check=False).returncode != 0
    assert "Login Succeeded" in docker(*own, "login", "-u", "alice", "-p", PEOPLE_PASSWORDS["alice"], server.host).stdout
    assert server.host in json.loads((config / "config.json").read_text())["auths"]
    docker(*own, "pull", remote)
    assert json.loads(docker(*own, "image", "inspect", remote).stdout)[0]["RepoDigests"] == [f"{server.host}/dev/ldap@{descriptor['digest']}"]
    docker(*own, "rmi", remote)
    docker(*own, "logout", server.host)
