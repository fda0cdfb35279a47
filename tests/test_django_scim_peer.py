"""The inbound benchmark's django-scim2 peer (``bench/django_scim/``) works: under gunicorn
with 2 workers on loopback it stores a user created through SCIM in its SQLite file, finds
it by ``userName eq``, applies the benchmark's PATCH and refuses a wrong token. Without
django-scim2 it skips (fails under ``CI=true``), like the other peers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.peers import PeerUnavailable
from tests.servers import unavailable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench" / "django_scim"))
from django_peer import DjangoScim, django_scim_server

TOKEN = "django-peer-token"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DjangoScim]:
    try:
        with django_scim_server(TOKEN, tmp_path_factory.mktemp("django-scim2")) as server:
            yield server
    except PeerUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture
def client(peer: DjangoScim) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=peer.base, timeout=10, headers={
            "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"}) as c:
        yield c


def user(name: str) -> dict[str, Any]:
    return {"schemas": [CORE], "userName": name,
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"value": f"{name}@example.com", "type": "work"}], "active": True}


def test_a_user_created_through_scim_is_stored_and_found_by_filter(
        peer: DjangoScim, client: httpx.Client) -> None:
    created = client.post("/Users", json=user("ada"))
    assert created.status_code == 201, created.text
    assert client.post("/Users", json=user("grace")).status_code == 201
    row = peer.user_row("ada")
    assert row is not None and row.scim_id == created.json()["id"]
    assert (row.first_name, row.email, row.is_active) == ("Ada", "ada@example.com", True)

    found = client.get("/Users", params={"filter": 'userName eq "ada"'})
    assert found.status_code == 200
    assert found.json()["totalResults"] == 1
    assert [(r["id"], r["userName"]) for r in found.json()["Resources"]] == [
        (row.scim_id, "ada")]
    assert client.get("/Users", params={"filter": 'userName eq "nobody"'}
                      ).json()["totalResults"] == 0


def test_the_benchmarks_patch_is_stored(peer: DjangoScim, client: httpx.Client) -> None:
    scim_id = client.post("/Users", json=user("patched")).json()["id"]
    patched = client.patch(f"/Users/{scim_id}", json={"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "name.givenName", "value": "Augusta"},
        {"op": "replace", "path": "active", "value": False}]})
    assert patched.status_code == 200, patched.text
    row = peer.user_row("patched")
    assert row is not None and (row.first_name, row.is_active) == ("Augusta", False)


def test_a_wrong_token_is_refused_and_stores_nothing(peer: DjangoScim) -> None:
    before = peer.user_count()
    answer = httpx.post(f"{peer.base}/Users", json=user("intruder"), timeout=10,
                        headers={"Authorization": "Bearer wrong"})
    assert answer.status_code == 401
    assert peer.user_count() == before and peer.user_row("intruder") is None
