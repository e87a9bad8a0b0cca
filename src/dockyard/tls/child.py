"""Certificate work in a short-lived interpreter of its own.

Making, renewing and checking certificates needs cryptography: its library's pages and
objects are about 9 MiB that a serving process would hold for the rest of its life after
a fraction of a second of work at start and twice a day. ``serve`` and its workers ask a
child interpreter instead (:func:`main`, imported by name: what it pickles must not be
defined in ``__main__``): the settings go to it
pickled on stdin, and the certificate's files (or the one-line error) and its log
records come back pickled on stdout, to be logged by the caller as its own.
"""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
from dataclasses import dataclass

from dockyard.tls.errors import CertificateError
from dockyard.tls.serving import ServingCertificate, TlsSettings, prepare

# Generating an RSA key can take a second on a slow machine; a child that hangs must not hold a start forever.
CHILD_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class _Outcome:
    serving: ServingCertificate | None
    error: str | None
    records: list[tuple[str, int, str]]  # (logger, level, message), in order


def prepare_in_child(settings: TlsSettings) -> ServingCertificate:
    """:func:`~dockyard.tls.serving.prepare` in a child interpreter; raises its :class:`CertificateError`."""
    try:
        run = subprocess.run(
            [sys.executable, "-c", "from dockyard.tls.child import main; main()"], input=pickle.dumps(settings), capture_output=True,
            timeout=CHILD_TIMEOUT_SECONDS, check=False,
        )
    except subprocess.TimeoutExpired:
        raise CertificateError(f"preparing the certificate in {settings.directory} took over {CHILD_TIMEOUT_SECONDS} s") from None
    if run.returncode != 0:
        said = run.stderr.decode(errors="replace").strip().splitlines()
        raise CertificateError(f"preparing the certificate failed: {said[-1] if said else f'exit status {run.returncode}'}")
    outcome: _Outcome = pickle.loads(run.stdout)
    for name, level, message in outcome.records:
        logging.getLogger(name).log(level, "%s", message)
    if outcome.serving is None:
        raise CertificateError(outcome.error or "preparing the certificate failed")
    return outcome.serving


class _RecordKeeper(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


def main() -> None:
    settings: TlsSettings = pickle.load(sys.stdin.buffer)
    keeper = _RecordKeeper()
    root = logging.getLogger()
    root.addHandler(keeper)
    root.setLevel(logging.INFO)
    try:
        outcome = _Outcome(prepare(settings), None, keeper.records)
    except (CertificateError, OSError) as error:
        outcome = _Outcome(None, str(error), keeper.records)
    sys.stdout.buffer.write(pickle.dumps(outcome))
