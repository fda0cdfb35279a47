"""argon2id hashing: configurable parameters, and a password never leaves the hash."""

from __future__ import annotations

import json

import pytest

from core.errors import InvalidInput
from core.iam import Iam
from core.identity.events import IdentityEvent, Initiator, Phase
from core.passwords import ARGON2_ENV, Argon2Params, PasswordHashing


def test_parameters_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ARGON2_ENV, "time_cost=2,memory_cost=2048,parallelism=1")
    assert Argon2Params.from_env() == Argon2Params(2, 2048, 1)
    hashed = PasswordHashing().hash("correct horse")
    assert hashed.startswith("$argon2id$") and "m=2048,t=2,p=1" in hashed


@pytest.mark.parametrize("bad", ["time_cost=x", "speed=3", "memory_cost=0", "time_cost"])
def test_bad_parameters_are_named(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv(ARGON2_ENV, bad)
    with pytest.raises(InvalidInput, match=ARGON2_ENV.replace("$", r"\$")):
        Argon2Params.from_env()


def test_verify_and_wrong_password() -> None:
    hashing = PasswordHashing(Argon2Params(1, 1024, 1))
    hashed = hashing.hash("s3cretpass")
    assert hashing.verify(hashed, "s3cretpass")
    assert not hashing.verify(hashed, "s3cretpasS")
    assert not hashing.verify(None, "s3cretpass")
    assert not hashing.verify("not-a-hash", "s3cretpass")


def test_password_is_never_stored_audited_or_shown(sqlite_iam: Iam, admin: Initiator) -> None:
    seen: list[IdentityEvent] = []
    sqlite_iam.bus.subscribe(Phase.COMMITTED, seen.append)
    sqlite_iam.identity.add_user(admin, "zoe", "Pl41n-Text-Pw", {"givenname": "Zoe"})
    sqlite_iam.identity.set_password(admin, "zoe", "N3w-Pl41n-Pw")
    with sqlite_iam.db.engine.connect() as conn:
        dump = json.dumps([list(map(str, r)) for t in ("um_users", "um_user_attributes",
                                                        "audit_log")
                           for r in conn.exec_driver_sql(f"SELECT * FROM {t}")])
    for secret in ("Pl41n-Text-Pw", "N3w-Pl41n-Pw"):
        assert secret not in dump
        assert all(secret not in repr(ev) for ev in seen)
    assert sqlite_iam.identity.verify_password("zoe", "N3w-Pl41n-Pw") is not None
    assert sqlite_iam.identity.verify_password("zoe", "Pl41n-Text-Pw") is None
