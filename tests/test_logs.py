"""Logs of a real ``dockyard serve``: JSON lines, the access log and the audit log."""

from __future__ import annotations

import base64
import json
import logging
import pathlib
import socket

import httpx

from dockyard.auth.htpasswd import hash_password, write_entries
from dockyard.logs import JsonFormatter, TextFormatter, audit
from tests.support.registry_client import push_image, sha256
from tests.support.server import DockyardProcess

# What ``serve`` prints with click, not through logging, when it starts.
ANNOUNCEMENTS = ("dockyard ", "WARNING: plain HTTP")
PASSWORD = "s3cret-Pa55word"
LAYER = b"layer" * 100


def records(server: DockyardProcess) -> list[dict]:
    """Every log record of the stopped server; any line that is not JSON fails the test."""
    server.stop()  # every record is written by the time the process has exited
    found = []
    for line in server.log.read_text().splitlines():
        if not line.strip() or line.startswith(ANNOUNCEMENTS):
            continue
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= entry.keys(), line
        found.append(entry)
    return found


def access(entries: list[dict]) -> list[dict]:
    return [entry["access"] for entry in entries if entry["logger"] == "dockyard.access"]


def audits(entries: list[dict]) -> list[dict]:
    return [entry["audit"] for entry in entries if entry["logger"] == "dockyard.audit"]


def htpasswd_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "htpasswd"
    write_entries(path, {"alice": hash_password(PASSWORD)})
    return path


def test_json_lines_access_and_audit_for_push_and_delete(start_server, tmp_path) -> None:
    server = start_server("--log-format", "json", "--htpasswd", str(htpasswd_file(tmp_path)), "--log-field", "service=registry")
    with httpx.Client(base_url=server.url, auth=("alice", PASSWORD), headers={"User-Agent": "log-test/1"}, timeout=30) as client:
        first, _ = push_image(client, "team/app", "latest", LAYER, monolithic=True)
        second, _ = push_image(client, "team/app", "latest", b"other" * 100, monolithic=True)
        assert client.delete(f"/v2/team/app/manifests/{first}").status_code == 202
        assert client.delete(f"/v2/team/app/blobs/{sha256(LAYER)}").status_code == 202
        assert client.get("/v2/", auth=("alice", "wrong")).status_code == 401
    entries = records(server)
    assert entries and all(entry["service"] == "registry" for entry in entries)

    lines = access(entries)
    puts = [line for line in lines if line["method"] == "PUT"]
    assert [line["path"] for line in puts] == ["/v2/team/app/manifests/latest"] * 2
    assert all(line["user"] == "alice" and line["status"] == 201 and line["remote"] == "127.0.0.1" for line in puts)
    assert all(line["user_agent"] == "log-test/1" for line in puts)
    assert all(isinstance(line["bytes"], int) and isinstance(line["duration"], float) for line in lines)
    assert any(line["user"] == "-" and line["status"] == 401 for line in lines)

    events = audits(entries)
    pushes = [event for event in events if event["event"] == "push"]
    assert [(event["repository"], event["reference"], event["digest"], event["user"]) for event in pushes] == [
        ("team/app", "latest", first, "alice"), ("team/app", "latest", second, "alice"),
    ]
    tags = [(event["tag"], event["old"], event["new"]) for event in events if event["event"] == "tag"]
    assert tags == [("latest", "-", first), ("latest", first, second)]
    deletes = [(event["event"], event["digest"], event["user"]) for event in events if event["event"].startswith("delete")]
    assert deletes == [("delete_manifest", first, "alice"), ("delete_blob", sha256(LAYER), "alice")]
    failed = [event for event in events if event["event"] == "login_failed"]
    assert [(event["user"], event["remote"]) for event in failed] == [("alice", "127.0.0.1")]


def test_no_secrets_in_the_log(start_server, tmp_path) -> None:
    server = start_server("--log-format", "json", "--htpasswd", str(htpasswd_file(tmp_path)))
    header = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    with httpx.Client(base_url=server.url, headers={"Authorization": header}, timeout=30) as client:
        push_image(client, "secret/app", "v1", monolithic=True)
        assert client.get("/v2/secret/app/tags/list", params={"password": PASSWORD}).status_code == 200
        assert client.get("/v2/", headers={"Authorization": "Basic " + base64.b64encode(b"alice:" + PASSWORD[::-1].encode()).decode()}).status_code == 401
    entries = records(server)
    assert "/v2/secret/app/tags/list?password=***" in [line["path"] for line in access(entries)]
    text = server.log.read_text()
    assert "alice" in text
    for secret in (PASSWORD, PASSWORD[::-1], header.split()[1], base64.b64encode(f"alice:{PASSWORD}".encode()).decode()[:20]):
        assert secret not in text


def test_token_service_login_is_audited(start_server, tmp_path) -> None:
    server = start_server("--log-format", "json", "--htpasswd", str(htpasswd_file(tmp_path)), "--token-auth")
    query = {"service": "dockyard", "scope": "repository:a/b:pull", "account": "alice"}
    response = httpx.get(f"{server.url}/auth/token", params=query, auth=("alice", PASSWORD))
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    assert httpx.get(f"{server.url}/v2/", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    entries = records(server)
    logins = [event for event in audits(entries) if event["event"] == "login"]
    assert [(event["user"], event["remote"]) for event in logins] == [("alice", "127.0.0.1")]
    token_lines = [line for line in access(entries) if line["path"].startswith("/auth/token")]
    assert [line["user"] for line in token_lines] == ["alice"]
    assert "account=alice" in token_lines[0]["path"]
    text = server.log.read_text()
    assert PASSWORD not in text and token not in text


def test_no_access_log_keeps_audit(start_server) -> None:
    server = start_server("--log-format", "json", "--no-access-log")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        digest, _ = push_image(client, "quiet/app", "v1", monolithic=True)
        assert client.delete("/v2/quiet/app/manifests/v1").status_code == 202
    entries = records(server)
    assert access(entries) == []
    assert [(event["event"], event["user"]) for event in audits(entries)] == [("push", "-"), ("tag", "-"), ("delete_tag", "-")]
    assert audits(entries)[-1]["digest"] == digest


def test_text_format_has_access_lines_and_fields(start_server) -> None:
    server = start_server("--log-field", "service=registry")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        push_image(client, "plain/app", "v1", monolithic=True)
    server.stop()
    lines = server.log.read_text().splitlines()
    puts = [line for line in lines if "dockyard.access" in line and '"PUT /v2/plain/app/manifests/v1 HTTP/1.1" 201' in line]
    assert len(puts) == 1 and puts[0].startswith(tuple("0123456789")) and puts[0].endswith("service=registry")
    assert any("dockyard.audit" in line and "push " in line and "repository=plain/app" in line for line in lines)


def test_malformed_request_is_one_info_line(start_server) -> None:
    server = start_server("--log-format", "json")
    malformed = (b"GET /v2/ HTTX/1.1\r\n\r\n", b"GET /v2/ HTTP/1.1\r\nBad Header\r\n\r\n")
    for request in malformed:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
            connection.sendall(request)
            assert connection.recv(100).startswith(b"HTTP/1.0 400 ")
    entries = records(server)
    parse_errors = [entry for entry in entries if entry["logger"] == "aiohttp.server"]
    assert [entry["level"] for entry in parse_errors] == ["info", "info"]
    assert "exception" not in parse_errors[0] and "exception" not in parse_errors[1]
    assert "Bad status line" in parse_errors[0]["message"] and "HTTX/1.1" in parse_errors[0]["message"]
    assert "Invalid header token" in parse_errors[1]["message"]
    assert all("\n" not in entry["message"] and "127.0.0.1" in entry["message"] for entry in parse_errors)
    assert "Traceback" not in server.log.read_text()


def test_formatters_without_a_server() -> None:
    record = logging.LogRecord("dockyard.x", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    entry = json.loads(JsonFormatter({"service": "registry", "n": 1}).format(record))
    assert (entry["level"], entry["logger"], entry["message"], entry["service"], entry["n"]) == ("warning", "dockyard.x", "hello world", "registry", 1)
    assert TextFormatter({"service": "my registry"}).format(record).endswith('hello world service="my registry"')


def test_audit_without_a_request(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="dockyard.audit"):
        audit("push", repository="a/b", digest=None, user="bob")
    assert caplog.records[-1].event["audit"] == {"event": "push", "repository": "a/b", "digest": "-", "user": "bob"}
