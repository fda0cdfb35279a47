"""``mware-iam serve`` as a real process: the SCIM API at /scim2, over HTTP and HTTPS, with a
token issued by the CLI to an application of the sample configuration."""

from __future__ import annotations

import datetime
import ipaddress
import signal
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.demo.deployment import demo_deployment
from core.identity.events import Initiator
from tests.conftest import FAST_ARGON2
from tests.peers import free_port
from tests.processes import MwareProcess, wait_until
from tests.provisioning_helpers import drain, peer_users
from tests.scim_api import USER
from tests.test_cli_process import mware


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def serving(home: Path, log: Path, *args: str) -> tuple[MwareProcess, int]:
    port = free_port()
    proc = MwareProcess(home, ["serve", "--port", str(port), "--poll", "0.2", *args], log)
    wait_until(lambda: "serving http" in proc.log() or proc.process.poll() is not None,
               30, "serve to listen")
    assert proc.process.poll() is None, proc.log()
    return proc, port


def test_serve_answers_scim_over_https_for_an_application(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cert, key = self_signed(tmp_path)
    proc, port = serving(home, tmp_path / "serve.log", "--tls-cert", str(cert),
                         "--tls-key", str(key))
    try:
        assert "serving https://127.0.0.1" in proc.log()
        token = mware("--home", str(home), "app", "token", "hr-portal").stdout.strip()
        trust = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=f"https://127.0.0.1:{port}/scim2", verify=trust,
                          headers={"Authorization": f"Bearer {token}"}, timeout=10) as api:
            created = api.post("/Users", json={"schemas": [USER], "userName": "quinn"})
            assert created.status_code == 201, created.text
            assert created.headers["Location"] == \
                f"https://127.0.0.1:{port}/scim2/Users/{created.json()['id']}"
            listed = api.get("/Users", params={"filter": 'userName eq "quinn"'}).json()
            assert listed["totalResults"] == 1
            assert api.get("/Users", headers={"Authorization": "Bearer x"}
                           ).status_code == 401
        shown = mware("--home", str(home), "user", "show", "quinn", "--json").stdout
        assert '"quinn"' in shown
        audit = mware("--home", str(home), "audit", "--limit", "5").stdout
        assert "app:hr-portal" in audit
    finally:
        code = proc.stop(signal.SIGINT)
    assert code == 0, proc.log()
    assert "Traceback" not in proc.log() and token not in proc.log()


def test_tls_options_go_together(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    result = mware("--home", str(tmp_path / "home"), "serve", "--tls-cert", str(cert))
    assert result.returncode == 2
    assert "--tls-cert and --tls-key go together" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_demo_serves_scim_with_a_token_of_the_hr_portal() -> None:
    with demo_deployment(peer_port=None, argon2=FAST_ARGON2, scim_port=0) as env:
        assert env.scim_url is not None and env.token_file is not None
        assert env.token_file.stat().st_mode & 0o777 == 0o600
        token = env.token_file.read_text()
        with httpx.Client(base_url=env.scim_url, timeout=10,
                          headers={"Authorization": f"Bearer {token}"}) as api:
            created = api.post("/Users", json={"schemas": [USER], "userName": "zed"})
            assert created.status_code == 201, created.text
        # The HR portal's targets take users with a provisioning role: give it, see it out.
        env.iam.identity.assign(Initiator.admin(), "Internal/provisioned", ["zed"])
        drain(env.iam)
        assert [u["userName"] for u in peer_users(env.peer_url, "zed")] == ["zed"]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{env.scim_url}/ServiceProviderConfig", timeout=2)  # stopped with it


def test_a_read_only_console_serves_no_scim(tmp_path: Path) -> None:
    result = mware("--home", str(tmp_path / "home"), "tui", "--read-only",
                   "--scim-port", str(free_port()))
    assert result.returncode == 2
    assert "--scim-port serves writes; it does not go with --read-only" in result.stderr
