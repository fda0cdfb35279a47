"""Fuzzing the inbound SCIM server with filters and PATCH bodies (hypothesis): whatever a
client sends, it gets a response below 500, and the server keeps serving."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.iam import Iam
from tests.scim_api import ENTERPRISE, PATCH, application, new_user, served

ATTRIBUTES = ["userName", "id", "externalId", "title", "active", "emails", "emails.value",
              "emails.type", "name.givenName", "name", "meta.lastModified", "meta.created",
              "phoneNumbers.value", "groups.value", "x509Certificates.value", "nope",
              f"{ENTERPRISE}:department", f"{ENTERPRISE}:manager.value", "members.value",
              "displayName", "urn:x:y:z"]
OPERATORS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ", "xx"]
VALUES = st.one_of(
    st.text(max_size=12).map(json.dumps), st.integers().map(str), st.booleans().map(
        lambda b: str(b).lower()), st.just("null"), st.just('"2026-01-01T00:00:00Z"'),
    st.text(max_size=6))


def comparisons() -> st.SearchStrategy[str]:
    compare = st.builds(lambda a, o, v: f"{a} {o} {v}", st.sampled_from(ATTRIBUTES),
                        st.sampled_from(OPERATORS), VALUES)
    present = st.sampled_from(ATTRIBUTES).map(lambda a: f"{a} pr")
    return st.one_of(compare, present)


FILTERS = st.recursive(
    comparisons(),
    lambda inner: st.one_of(
        st.builds(lambda a, b, op: f"{a} {op} {b}", inner, inner, st.sampled_from(
            ["and", "or", "AND"])),
        inner.map(lambda f: f"not ({f})"),
        inner.map(lambda f: f"({f})"),
        st.builds(lambda a, f: f"{a.split('.')[0]}[{f}]", st.sampled_from(ATTRIBUTES),
                  inner)),
    max_leaves=6) | st.text(max_size=30)

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(["value", "type", "display", "primary",
                                                       "givenName", "active", "title"]),
                                      inner, max_size=3),
                    max_leaves=8)
PATHS = st.one_of(st.sampled_from([*ATTRIBUTES, 'emails[type eq "work"].value',
                                   'members[value eq "x"]', 'emails[', "name.familyName",
                                   "password"]),
                  st.text(max_size=15), st.none())
OPERATIONS = st.lists(st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "replace", "remove", "Replace", "Add", "delete"])},
    optional={"path": PATHS, "value": JSON}), min_size=0, max_size=4)
BODIES = st.one_of(
    OPERATIONS.map(lambda ops: {"schemas": [PATCH], "Operations": ops}),
    JSON.map(lambda j: j if isinstance(j, dict) else {"schemas": [PATCH], "Operations": j}))

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def test_no_filter_makes_the_server_fail(sqlite_iam: Iam) -> None:
    with served(sqlite_iam) as api, api.client(application(sqlite_iam, "fuzz")) as client:
        new_user(client, "seed", title="t", emails=[{"value": "s@example.com",
                                                      "type": "work"}])

        @FUZZ
        @given(FILTERS, st.sampled_from(["/Users", "/Groups"]))
        def check(scim_filter: str, endpoint: str) -> None:
            response = client.get(endpoint, params={"filter": scim_filter})
            assert response.status_code < 500, (scim_filter, response.text)
            if response.status_code == 200:
                assert response.json()["totalResults"] >= 0

        check()
        assert client.get("/Users", params={"filter": 'userName eq "seed"'}
                          ).json()["totalResults"] == 1


def test_no_patch_body_makes_the_server_fail(sqlite_iam: Iam) -> None:
    with served(sqlite_iam) as api, api.client(application(sqlite_iam, "fuzz")) as client:
        user = new_user(client, "target", title="t")
        group = client.post("/Groups", json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "gg",
            "members": [{"value": user["id"]}]}).json()

        @FUZZ
        @given(BODIES, st.sampled_from([f"/Users/{user['id']}", f"/Groups/{group['id']}"]))
        def check(body: Any, path: str) -> None:
            response = client.patch(path, json=body)
            assert response.status_code < 500, (body, response.text)

        check()
        assert client.get(f"/Users/{user['id']}").json()["userName"] == "target"
