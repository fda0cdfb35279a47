"""A throwaway OpenLDAP server (Debian's ``slapd``) for the tests and the benchmark.

:func:`running_slapd` writes a ``slapd.conf`` (mdb backend; the core, cosine,
inetorgperson and nis schemas; the memberof and refint overlays; a service account with
write access and no size limit, everyone else read-only), a CA and a server certificate
(for StartTLS and LDAPS), loads a base (and any extra LDIF) with ``slapadd``, runs
``slapd -f CONF -h "ldap://127.0.0.1:PORT/ ldaps://127.0.0.1:PORT/" -d 0`` on free ports,
polls until it answers (bounded), and stops it by its PID.

Each test takes a subtree of its own (:meth:`Slapd.new_tree`), so one server serves the
whole session.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ldap3 import Connection, Server
from ldap3.core.exceptions import LDAPException
from ldap3.utils.hashed import hashed

SUFFIX = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin-secret"
SERVICE_DN = f"cn=iam,{SUFFIX}"
SERVICE_PASSWORD = "iam-service-secret"
#: An account whose searches stop at LIMIT entries, unless they are paged.
LIMITED_DN = f"cn=limited,{SUFFIX}"
LIMIT = 10
MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib/x86_64-linux-gnu/ldap", "/usr/lib64/openldap",
               "/usr/lib/openldap")
SCHEMA_DIR = Path("/etc/ldap/schema")
START_TIMEOUT = 15.0


class SlapdUnavailable(Exception):
    """slapd is not installed here, or would not start (the message says which)."""


def find_program(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/local/sbin") / name)
         if p.exists()), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _module_dir() -> str:
    for d in MODULE_DIRS:
        if (Path(d) / "memberof.la").exists() or (Path(d) / "memberof.so").exists():
            return d
    raise SlapdUnavailable(f"slapd's overlay modules (memberof) are in none of {MODULE_DIRS}")


def write_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for 127.0.0.1 and localhost."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mware-iam test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


def write_config(directory: Path, tls: tuple[Path, Path, Path]) -> Path:
    schemas = "\n".join(f"include {SCHEMA_DIR / s}.schema"
                        for s in ("core", "cosine", "inetorgperson", "nis"))
    conf = directory / "slapd.conf"
    conf.write_text(f"""{schemas}
modulepath {_module_dir()}
moduleload back_mdb
moduleload memberof
moduleload refint
pidfile {directory / "slapd.pid"}
argsfile {directory / "slapd.args"}
TLSCACertificateFile {tls[0]}
TLSCertificateFile {tls[1]}
TLSCertificateKeyFile {tls[2]}
access to attrs=userPassword
    by self =xw
    by dn.exact="{SERVICE_DN}" write
    by dn.exact="{LIMITED_DN}" write
    by anonymous auth
    by * none
access to *
    by dn.exact="{SERVICE_DN}" write
    by dn.exact="{LIMITED_DN}" write
    by * read
database mdb
dbnosync
maxsize 4294967296
suffix "{SUFFIX}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PASSWORD}
directory {directory / "data"}
limits dn.exact="{SERVICE_DN}" size=unlimited time=unlimited
limits dn.exact="{LIMITED_DN}" size.soft={LIMIT} size.hard={LIMIT} size.prtotal=unlimited
index objectClass eq
index uid,cn,mail eq,sub
index member,memberOf,entryUUID eq
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
overlay refint
refint_attributes member
""")
    return conf


def base_ldif() -> str:
    return f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: {SERVICE_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: iam
userPassword: {hashed("SALTED_SHA", SERVICE_PASSWORD)}

dn: {LIMITED_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: limited
userPassword: {hashed("SALTED_SHA", SERVICE_PASSWORD)}
"""


@dataclass(frozen=True)
class LdapTree:
    """A subtree of its own: ``ou=Users`` and ``ou=Groups`` under ``base``."""

    base: str

    @property
    def users(self) -> str:
        return f"ou=Users,{self.base}"

    @property
    def groups(self) -> str:
        return f"ou=Groups,{self.base}"


def _answers(url: str) -> bool:
    try:
        conn = Connection(Server(url, connect_timeout=1), receive_timeout=2, auto_bind=True)
    except (LDAPException, OSError):
        return False
    conn.unbind()
    return True


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-5:])


@dataclass
class Slapd:
    program: str
    directory: Path
    port: int
    tls_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.directory / "slapd.conf"

    def start(self) -> None:
        """Run slapd on the server's ports and wait (bounded) until it answers."""
        log = self.directory / "slapd.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [self.program, "-f", str(self.conf), "-h",
                 f"ldap://127.0.0.1:{self.port}/ ldaps://127.0.0.1:{self.tls_port}/", "-d", "0"],
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(self.url):
            if self.process.poll() is not None:
                raise SlapdUnavailable(f"slapd exited with status {self.process.returncode}: "
                                       f"{_log_tail(log)}")
            if time.monotonic() > deadline:
                self.stop()
                raise SlapdUnavailable(f"slapd did not answer within {START_TIMEOUT:.0f}s: "
                                       f"{_log_tail(log)}")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    def admin(self) -> Connection:
        """A connection bound as the root DN (no ACL, no limit)."""
        return Connection(Server(self.url), ADMIN_DN, ADMIN_PASSWORD, auto_bind=True,
                          raise_exceptions=True)

    def new_tree(self, name: str | None = None) -> LdapTree:
        tree = LdapTree(f"ou={name or 't' + uuid.uuid4().hex[:10]},{SUFFIX}")
        conn = self.admin()
        try:
            conn.add(tree.base, "organizationalUnit")
            conn.add(tree.users, "organizationalUnit")
            conn.add(tree.groups, "organizationalUnit")
        finally:
            conn.unbind()
        return tree

    def properties(self, tree: LdapTree, **overrides: Any) -> dict[str, Any]:
        """Store properties for ``tree`` bound as the service account."""
        return {"connection_url": self.url, "bind_dn": SERVICE_DN,
                "bind_password": SERVICE_PASSWORD, "user_search_base": tree.users,
                "group_search_base": tree.groups, **overrides}

    def stop(self) -> None:
        """Stop slapd by its PID (its data stays: ``start`` serves it again)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@contextlib.contextmanager
def running_slapd(directory: Path, ldif: Iterable[Path] = ()) -> Iterator[Slapd]:
    """A slapd serving :data:`SUFFIX` from ``directory``; stopped (by PID) on exit."""
    slapd, slapadd = find_program("slapd"), find_program("slapadd")
    if slapd is None or slapadd is None:
        raise SlapdUnavailable("slapd is not installed (apt-get install slapd ldap-utils)")
    (directory / "data").mkdir(parents=True, exist_ok=True)
    conf = write_config(directory, write_tls(directory))
    (directory / "base.ldif").write_text(base_ldif())
    for part in (directory / "base.ldif", *ldif):
        loaded = subprocess.run([slapadd, "-q", "-f", str(conf), "-l", str(part)],
                                capture_output=True, text=True, check=False)
        if loaded.returncode:
            raise SlapdUnavailable(f"slapadd {part.name} failed: {loaded.stderr.strip()}")
    server = Slapd(slapd, directory, free_port(), free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
