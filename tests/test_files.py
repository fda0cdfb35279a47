"""core.files.write_private: whole files, mode 0600, nothing left behind."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from core.files import write_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_writes_text_and_bytes_0600_whatever_the_umask(tmp_path: Path) -> None:
    import os
    old = os.umask(0)
    try:
        write_private(tmp_path / "a.txt", "héllo")
        write_private(tmp_path / "b.bin", b"\x00\x01")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert _mode(tmp_path / "a.txt") == _mode(tmp_path / "b.bin") == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_replaces_an_open_file_and_tightens_it(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, "new")
    assert path.read_text() == "new"
    assert _mode(path) == 0o600


def test_no_replace_keeps_what_exists(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_text("theirs")
    with pytest.raises(FileExistsError):
        write_private(path, "mine", replace=False)
    assert path.read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]
    write_private(tmp_path / "new.key", "mine", replace=False)
    assert (tmp_path / "new.key").read_text() == "mine"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "settings"
    path.write_text("old")
    with pytest.raises(TypeError):
        write_private(path, 42)  # type: ignore[arg-type]
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["settings"]


def test_the_secret_key_is_made_0600_and_a_racing_maker_wins(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.fernet import Fernet

    from core import secrets
    monkeypatch.delenv(secrets.KEY_ENV, raising=False)
    theirs = Fernet.generate_key()

    def racing(path: Path, data: str | bytes, *, replace: bool = True) -> None:
        write_private(path, theirs)  # another process makes the key first
        write_private(path, data, replace=replace)

    monkeypatch.setattr(secrets, "write_private", racing)
    box = secrets.SecretBox.for_home(tmp_path / "secret.key")
    assert (tmp_path / "secret.key").read_bytes() == theirs
    assert _mode(tmp_path / "secret.key") == 0o600
    assert secrets.SecretBox(theirs).decrypt(box.encrypt("x")) == "x"


def test_the_sandbox_identity_providers_key_is_0600(tmp_path: Path) -> None:
    from core.jit.sandbox import KEY_FILE, SandboxIdp
    made = SandboxIdp.load_or_create(tmp_path / "sso", "https://sso.example.test")
    assert _mode(tmp_path / "sso" / KEY_FILE) == 0o600
    again = SandboxIdp.load_or_create(tmp_path / "sso", "https://sso.example.test")
    assert again.jwks() == made.jwks()
