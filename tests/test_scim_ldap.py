"""The inbound SCIM server over an LDAP userstore (a real slapd): an application whose
inbound userstore is the directory creates, finds, changes and deletes users and groups
there, its filters reaching the directory as LDAP filters."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from core.iam import Iam
from core.identity.events import Initiator
from tests.ldap_server import LdapTree, Slapd
from tests.scim_api import GROUP, USER, application, new_user, patch, served

pytestmark = pytest.mark.server


@pytest.fixture
def directory_app(sqlite_iam: Iam, slapd_server: Slapd, ldap_tree: LdapTree
                  ) -> Iterator[httpx.Client]:
    sqlite_iam.save_userstore(Initiator.admin(), "DIR", "ldap",
                              slapd_server.properties(ldap_tree))
    with served(sqlite_iam) as api, api.client(application(sqlite_iam, "dir", "DIR")) as c:
        yield c


def test_users_and_groups_live_in_the_directory(sqlite_iam: Iam,
                                                directory_app: httpx.Client) -> None:
    hr = directory_app
    ann = new_user(hr, "ann", name={"givenName": "Ann", "familyName": "Archer"},
                   emails=[{"value": "ann@example.com", "type": "work"}], title="Pilot")
    new_user(hr, "bob", name={"givenName": "Bob", "familyName": "Baker"},
             emails=[{"value": "bob@example.org", "type": "work"}])
    assert sqlite_iam.identity.get_user("DIR/ann").id == ann["id"]  # entryUUID
    assert sqlite_iam.identity.count_users("PRIMARY") == 0

    def names(scim_filter: str) -> list[str]:
        body = hr.get("/Users", params={"filter": scim_filter, "sortBy": "userName"}).json()
        return [r["userName"] for r in body.get("Resources", [])]

    assert names('userName eq "bob"') == ["bob"]
    assert names('emails.value ew "example.com"') == ["ann"]
    assert names('name.familyName sw "B" or title pr') == ["ann", "bob"]
    assert names('not (title pr)') == ["bob"]
    assert names('userName eq "*)(uid=*"') == []
    assert patch(hr, f"/Users/{ann['id']}", {"op": "replace", "path": "title",
                                             "value": "Captain"}).status_code == 204
    assert hr.get(f"/Users/{ann['id']}").json()["title"] == "Captain"
    group = hr.post("/Groups", json={"schemas": [GROUP], "displayName": "crew",
                                      "members": [{"value": ann["id"]}]})
    assert group.status_code == 201, group.text
    by_member = hr.get("/Groups", params={"filter": f'members[value eq "{ann["id"]}"]'})
    assert [g["displayName"] for g in by_member.json()["Resources"]] == ["crew"]
    assert hr.delete(f"/Users/{ann['id']}").status_code == 204
    assert names('userName eq "ann"') == []
    error = hr.get("/Users", params={"filter": f'id gt "{ann["id"]}"'})
    assert error.status_code == 400 and error.json()["scimType"] == "invalidFilter"
    assert hr.post("/Users", json={"schemas": [USER], "userName": "bob"}
                   ).status_code == 409


def test_a_stalled_directory_holds_up_no_request_on_sqlite(
        sqlite_iam: Iam, slapd_server: Slapd, ldap_tree: LdapTree) -> None:
    """Requests on the SQLite stores run one after another on a thread of their own; a
    request waiting on the directory runs elsewhere, so it delays none of them."""
    sqlite_iam.save_userstore(Initiator.admin(), "DIR", "ldap",
                              slapd_server.properties(ldap_tree))
    with served(sqlite_iam) as api, \
            api.client(application(sqlite_iam, "dir", "DIR")) as directory, \
            api.client(application(sqlite_iam, "hr", "PRIMARY")) as hr:
        new_user(directory, "warm")  # the store's connection is open
        stalled = _stalled_search(slapd_server, directory, hr)
    assert stalled.status_code == 200 and stalled.json()["totalResults"] == 1


def _stalled_search(slapd_server: Slapd, directory: httpx.Client, hr: httpx.Client
                    ) -> httpx.Response:
    """A directory search sent while slapd is stopped; PRIMARY requests meanwhile."""
    assert slapd_server.process is not None
    os.kill(slapd_server.process.pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(1) as pool:
            search = pool.submit(directory.get, "/Users",
                                 params={"filter": 'userName eq "warm"'})
            for name in ("ann", "bob"):  # each answers while the search still waits
                new_user(hr, name)
                assert hr.get("/Users", params={"filter": f'userName eq "{name}"'}
                              ).json()["totalResults"] == 1
                assert not search.done()
            os.kill(slapd_server.process.pid, signal.SIGCONT)
            return search.result(timeout=30)
    finally:
        os.kill(slapd_server.process.pid, signal.SIGCONT)
