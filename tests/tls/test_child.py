"""Certificate work in a child interpreter: its result, its log lines and its failures reach the caller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import sys

import pytest

from dockyard.tls import serving as tls_serving
from dockyard.tls.child import prepare_in_child
from dockyard.tls.errors import CertificateError
from dockyard.tls.serving import SERVER_CERT, TlsSettings, keep_renewed, server_context


def test_the_child_makes_the_certificates_and_its_log_lines_are_the_callers(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "dockyard.tls")
    serving = prepare_in_child(TlsSettings(directory=tmp_path / "tls", hostnames=("registry.test",)))
    assert serving.certificate == tmp_path / "tls" / SERVER_CERT and serving.certificate.is_file()
    said = [record.getMessage() for record in caplog.records if record.name == "dockyard.tls"]
    assert said[0] == f"created a local certificate authority in {tmp_path / 'tls'}"
    assert said[1].startswith("issued a server certificate for registry.test, ")


def test_a_refused_certificate_is_the_childs_one_line_error(tmp_path: pathlib.Path) -> None:
    (tmp_path / "given.crt").write_text("not a certificate\n")
    (tmp_path / "given.key").write_text("not a key\n")
    with pytest.raises(CertificateError, match="given.crt") as refused:
        prepare_in_child(TlsSettings(directory=tmp_path / "tls", certificate=tmp_path / "given.crt", key=tmp_path / "given.key"))
    assert "\n" not in str(refused.value)


def test_a_child_that_dies_is_a_certificate_error(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "false")
    with pytest.raises(CertificateError, match="exit status 1"):
        prepare_in_child(TlsSettings(directory=tmp_path / "tls"))
    assert not (tmp_path / "tls").exists()


async def test_a_serving_process_renews_through_the_child(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = TlsSettings(directory=tmp_path / "tls")
    serving = prepare_in_child(settings)
    context = server_context(serving, settings)
    first = serving.certificate.read_bytes()
    serving.certificate.unlink()  # due now: "none yet"
    monkeypatch.setattr(tls_serving, "RENEW_CHECK_SECONDS", 0)
    renewing = asyncio.ensure_future(keep_renewed(context, settings))
    for _ in range(600):
        await asyncio.sleep(0.05)
        if serving.certificate.exists():
            break
    renewing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await renewing
    assert serving.certificate.read_bytes() != first
