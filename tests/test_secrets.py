"""Secrets at rest: the key, encryption, connector secrets in the database, references."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from core.errors import InvalidInput
from core.iam import Iam
from core.identity.events import Initiator
from core.idps import ConnectorConfig, IdentityProvider
from core.schema import connector_configs
from core.secrets import (
    KEY_ENV,
    MASK,
    SecretBox,
    SecretValue,
    is_reference,
    mask,
    resolve_reference,
)
from tests.conftest import FAST_ARGON2

TOKEN = "tok-7f3a9c1e5b2d4f6a8c0e"
KEY = Fernet.generate_key()


@pytest.fixture(autouse=True)
def no_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


# ---------------------------------------------------------------- the key
def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "home" / "secret.key"
    box = SecretBox.for_home(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    Fernet(key_file.read_bytes().strip())  # a valid Fernet key
    token = box.encrypt("value")
    assert SecretBox.for_home(key_file).decrypt(token) == "value"  # the same key, read back


def test_key_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        SecretBox.for_home(tmp_path / "secret.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600


def test_environment_key_overrides_the_file(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "secret.key"
    file_box = SecretBox.for_home(key_file)
    env_key = Fernet.generate_key()
    monkeypatch.setenv(KEY_ENV, env_key.decode())
    env_box = SecretBox.for_home(key_file)
    token = env_box.encrypt("value")
    assert SecretBox(env_key).decrypt(token) == "value"
    with pytest.raises(InvalidInput):
        file_box.decrypt(token)


def test_no_key_file_is_written_when_the_environment_has_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    SecretBox.for_home(tmp_path / "secret.key")
    assert not (tmp_path / "secret.key").exists()


def test_an_invalid_key_is_invalid_input_without_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "not-a-fernet-key-but-secret")
    with pytest.raises(InvalidInput, match=KEY_ENV) as exc:
        SecretBox.for_home(tmp_path / "secret.key")
    assert "not-a-fernet-key-but-secret" not in str(exc.value)


# ---------------------------------------------------------------- encryption
@given(st.text(max_size=200))
def test_encrypt_decrypt_round_trip(value: str) -> None:
    box = SecretBox(KEY)
    token = box.encrypt(value)
    assert box.decrypt(token) == value


def test_encryption_is_randomized() -> None:
    box = SecretBox(KEY)
    assert box.encrypt(TOKEN) != box.encrypt(TOKEN)


def test_wrong_key_is_a_clear_invalid_input() -> None:
    token = SecretBox(KEY).encrypt(TOKEN)
    with pytest.raises(InvalidInput) as exc:
        SecretBox(Fernet.generate_key()).decrypt(token)
    message = str(exc.value)
    assert "cannot be decrypted" in message and "secret key changed" in message
    assert "\n" not in message and "Traceback" not in message and "InvalidToken" not in message
    assert TOKEN not in message and token not in message


# ---------------------------------------------------------------- connector secrets in the DB
def scim_idp(token: str = TOKEN) -> IdentityProvider:
    return IdentityProvider(
        name="corp-scim",
        connectors=(ConnectorConfig(
            "scim2", properties={"scim2-user-ep": "http://127.0.0.1:8787/v2/Users",
                                 "scim2-authentication-mode": "BEARER"},
            secrets={"scim2-access-token": SecretValue(token)}),),
    )


def test_connector_secret_is_encrypted_in_the_database(iam: Iam, admin: Initiator) -> None:
    iam.save_idp(admin, scim_idp())
    with iam.db.transaction() as conn:
        rows = conn.execute(select(connector_configs)).mappings().all()
    assert len(rows) == 1
    raw = json.dumps({k: v for k, v in rows[0].items()}, default=str)
    assert TOKEN not in raw
    cipher = rows[0]["secrets"]["scim2-access-token"]["cipher"]
    assert iam.secrets.decrypt(cipher) == TOKEN
    # read back through the API: the value is there, in a SecretValue
    got = iam.get_idp("corp-scim").connector("scim2")
    assert got.secrets["scim2-access-token"].value == TOKEN
    assert "scim2-access-token" not in got.properties


def test_a_changed_key_makes_stored_secrets_a_clear_error(
        tmp_path: Path, db_url: str, admin: Initiator, monkeypatch: pytest.MonkeyPatch) -> None:
    home = str(tmp_path / "home")
    with Iam.open(home=home, db=db_url, argon2=FAST_ARGON2) as iam:
        iam.save_idp(admin, scim_idp())
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    with (Iam.open(home=home, db=db_url, argon2=FAST_ARGON2) as iam,
          pytest.raises(InvalidInput, match="secret key changed") as exc):
        iam.get_idp("corp-scim")
    assert TOKEN not in str(exc.value)


def test_reprs_never_show_a_secret() -> None:
    idp = scim_idp()
    secret = SecretValue(TOKEN, ref="${env:SCIM_TOKEN}")
    assert TOKEN not in repr(secret) and "${env:SCIM_TOKEN}" in repr(secret)
    assert TOKEN not in repr(idp) and TOKEN not in str(idp)
    assert TOKEN not in repr(idp.connectors[0])
    masked = idp.connectors[0].masked()
    assert masked["scim2-access-token"] == MASK
    assert masked["scim2-user-ep"] == "http://127.0.0.1:8787/v2/Users"


def test_mask() -> None:
    assert mask(TOKEN) == MASK and mask("") == "" and mask(None) == ""


# ---------------------------------------------------------------- references
def test_env_references(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MWARE_TEST_SECRET", TOKEN)
    monkeypatch.delenv("MWARE_TEST_UNSET", raising=False)
    assert resolve_reference("${env:MWARE_TEST_SECRET}") == TOKEN
    assert resolve_reference("${env:MWARE_TEST_SECRET:-fallback}") == TOKEN
    assert resolve_reference("${env:MWARE_TEST_UNSET:-fallback}") == "fallback"
    assert resolve_reference("${env:MWARE_TEST_UNSET:-}") == ""
    assert resolve_reference("${env:MWARE_TEST_UNSET}") is None


def test_file_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "token.txt"
    secret_file.write_text(TOKEN + "\n")
    assert resolve_reference(f"${{file:{secret_file}}}") == TOKEN
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_reference("${file:~/token.txt}") == TOKEN
    with pytest.raises(InvalidInput, match="cannot be read"):
        resolve_reference(f"${{file:{tmp_path / 'missing.txt'}}}")


@pytest.mark.parametrize("text, ok", [
    ("${env:NAME}", True), ("${env:NAME:-x}", True), ("${file:/run/secrets/t}", True),
    ("plain-value", False), ("${vault:x}", False), ("$ {env:X}", False), ("${env:}", False),
    ("prefix ${env:NAME}", False),
])
def test_what_is_a_reference(text: str, ok: bool) -> None:
    assert is_reference(text) is ok
    if not ok:
        with pytest.raises(InvalidInput, match="is not a secret reference"):
            resolve_reference(text)
