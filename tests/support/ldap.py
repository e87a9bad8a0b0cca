"""Debian's OpenLDAP ``slapd`` on 127.0.0.1, for the LDAP sign-in tests: its own ``slapd.conf``
(an mdb database, the schema files Debian ships), a free port for ``ldap://`` and one for
``ldaps://`` (a certificate from the project's own CA code), a few people and groups.

A missing ``slapd`` skips locally and fails in CI (see :mod:`tests.support.tools`).
"""

from __future__ import annotations

import base64
import hashlib
import pathlib
import secrets
import shutil
import socket
import subprocess
import textwrap
import time
from dataclasses import dataclass, field
from typing import Any

import ldap3

from dockyard.tls.certificates import CertificateAuthority, create_ca, generate_key, write_certificates, write_key
from tests.support.processes import free_port, terminate
from tests.support.tools import unavailable

SUFFIX = "dc=example,dc=org"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "root-secret"
SEARCH_DN = f"uid=search,{PEOPLE}"
SEARCH_PASSWORD = "search-secret"
SCHEMA = "/etc/ldap/schema"  # where Debian's slapd package puts its schema files

# uid -> password; and group cn -> member uids. "search" is the service account.
PEOPLE_PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "search": SEARCH_PASSWORD}
GROUP_MEMBERS = {"developers": ["alice"], "operators": ["alice", "carol"], "readers": ["bob"]}

# An access policy naming directory groups it does not list (it lists "writers", an htpasswd group of tests.support.auth).
POLICY = textwrap.dedent(
    """\
    groups:
      writers: [writer]
    rules:
      - who: [group:developers, group:writers]
        repositories: ["dev/*"]
        actions: [pull, push, delete]
      - who: [group:readers]
        repositories: ["dev/*"]
        actions: [pull]
    """
)


def person_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def ssha(password: str) -> str:
    """An ``{SSHA}`` userPassword, as ``slappasswd`` writes it."""
    salt = secrets.token_bytes(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


def slapd_binary() -> str | None:
    # Debian installs it in sbin, which a non-root PATH may lack.
    return shutil.which("slapd") or shutil.which("slapd", path="/usr/sbin:/usr/local/sbin")


@dataclass
class Slapd:
    """A running ``slapd``; ``stop()`` and ``start()`` again keep its data and ports."""

    directory: pathlib.Path
    port: int = 0
    tls_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    ca_file: pathlib.Path = field(init=False)

    def __post_init__(self) -> None:
        self.ca_file = self.directory / "ca.crt"

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def _configure(self) -> pathlib.Path:
        ca_key = generate_key()
        ca = CertificateAuthority(create_ca(ca_key, common_name="LDAP test CA"), ca_key)
        server_key = generate_key()
        write_certificates(self.ca_file, ca.certificate)
        write_certificates(self.directory / "server.crt", ca.issue(server_key, ["127.0.0.1"]))
        write_key(self.directory / "server.key", server_key)
        (self.directory / "data").mkdir()
        config = self.directory / "slapd.conf"
        config.write_text(textwrap.dedent(f"""\
            include {SCHEMA}/core.schema
            include {SCHEMA}/cosine.schema
            include {SCHEMA}/inetorgperson.schema
            include {SCHEMA}/nis.schema
            modulepath /usr/lib/ldap
            moduleload back_mdb
            pidfile {self.directory}/slapd.pid
            argsfile {self.directory}/slapd.args
            TLSCACertificateFile {self.ca_file}
            TLSCertificateFile {self.directory}/server.crt
            TLSCertificateKeyFile {self.directory}/server.key

            database mdb
            suffix "{SUFFIX}"
            rootdn "{ROOT_DN}"
            rootpw {ROOT_PASSWORD}
            directory {self.directory}/data
            maxsize 16777216
            # People bind with their passwords; only the service account reads the tree.
            access to attrs=userPassword by anonymous auth by * none
            access to * by dn.exact="{SEARCH_DN}" read by * none
        """))
        return config

    def start(self) -> Slapd:
        binary = slapd_binary()
        if binary is None:
            unavailable("slapd is not installed (Debian's slapd package)")
        assert binary is not None
        first = self.port == 0
        config = self.directory / "slapd.conf" if not first else self._configure()
        if first:
            self.port, self.tls_port = free_port(), free_port()
        # -d 0: in the foreground (terminate() stops it), logging nothing but errors.
        with open(self.directory / "slapd.log", "ab") as log:
            self.process = subprocess.Popen(
                [binary, "-f", str(config), "-h", f"{self.url}/ {self.tls_url}/", "-d", "0"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited at start:\n{(self.directory / 'slapd.log').read_text(errors='replace')[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"slapd does not answer on {self.url}")
        if first:
            self.load()
        return self

    def stop(self) -> None:
        terminate(self.process)
        self.process = None

    def admin(self) -> ldap3.Connection:
        return ldap3.Connection(ldap3.Server(self.url), ROOT_DN, ROOT_PASSWORD, auto_bind=True, raise_exceptions=True)

    def load(self) -> None:
        with self.admin() as connection:
            connection.add(SUFFIX, ["dcObject", "organization"], {"dc": "example", "o": "Example"})
            for unit in ("people", "groups"):
                connection.add(f"ou={unit},{SUFFIX}", ["organizationalUnit"], {"ou": unit})
            for uid, password in PEOPLE_PASSWORDS.items():
                self.add_person(uid, password, connection)
            for name, members in GROUP_MEMBERS.items():
                connection.add(f"cn={name},{GROUPS}", ["groupOfNames"], {"cn": name, "member": [person_dn(uid) for uid in members]})

    def add_person(self, uid: str, password: str, connection: ldap3.Connection | None = None) -> None:
        attributes: dict[str, Any] = {"uid": uid, "cn": uid, "sn": uid, "userPassword": ssha(password)}
        if connection is None:
            with self.admin() as connection:
                connection.add(person_dn(uid), ["inetOrgPerson"], attributes)
        else:
            connection.add(person_dn(uid), ["inetOrgPerson"], attributes)

    def remove_person(self, uid: str) -> None:
        with self.admin() as connection:
            connection.delete(person_dn(uid))


def start_slapd(directory: pathlib.Path) -> Slapd:
    directory.mkdir(parents=True, exist_ok=True)
    return Slapd(directory).start()


def ldap_settings(slapd: Slapd, **overrides: Any) -> dict[str, Any]:
    """The ``dockyard.ldap`` section for ``slapd`` (plain ldap://; override ``url`` and ``ca_file`` for TLS)."""
    return {
        "url": slapd.url,
        "bind_dn": SEARCH_DN,
        "bind_password": SEARCH_PASSWORD,
        "user_base": PEOPLE,
        "user_filter": "(uid={username})",
        "group_base": GROUPS,
        "group_filter": "(member={dn})",
        "group_name_attribute": "cn",
        **overrides,
    }

