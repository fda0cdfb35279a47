"""``mware-iam userstore ...`` on a real deployment, with a real slapd behind the LDAP store.

Assertions open the same deployment afterwards and check what it holds, not just what was
printed; secrets must never appear in any output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.secrets import SecretValue
from tests.ldap_server import SERVICE_DN, SERVICE_PASSWORD, LdapTree, Slapd, free_port
from tests.test_cli import Cli, one_error_line

pytestmark = pytest.mark.server


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")


def ldap_args(slapd: Slapd, tree: LdapTree, url: str | None = None) -> list[str]:
    return ["--type", "ldap", "--set", f"connection_url={url or slapd.url}",
            "--set", f"bind_dn={SERVICE_DN}", "--set", f"user_search_base={tree.users}",
            "--set", f"group_search_base={tree.groups}", "--secret-stdin", "bind_password"]


def add_ldap(run: Cli, slapd: Slapd, tree: LdapTree, domain: str = "LDAP1") -> None:
    result = run.ok("userstore", "add", domain, *ldap_args(slapd, tree),
                    "--description", "Staff", input=SERVICE_PASSWORD + "\n")
    assert result.stdout == f"added userstore {domain} (ldap)\n"
    assert SERVICE_PASSWORD not in result.output


def test_add_list_show_and_test_an_ldap_store(run: Cli, slapd_server: Slapd,
                                              ldap_tree: LdapTree) -> None:
    add_ldap(run, slapd_server, ldap_tree)
    with run.iam() as iam:
        d = iam.stores.definitions["LDAP1"]
        assert d.properties["bind_password"] == SecretValue(SERVICE_PASSWORD)
        assert d.description == "Staff" and d.position == 1
    listed = run.ok("userstore", "list").stdout
    assert listed.splitlines()[0].split() == ["DOMAIN", "TYPE", "ENABLED", "HEALTH",
                                              "DESCRIPTION"]
    assert "LDAP1" in listed and "ok (" in listed
    items = json.loads(run.ok("userstore", "list", "--json").stdout)["items"]
    assert [(i["domain"], i["type"], i["health"]["reachable"]) for i in items] == [
        ("PRIMARY", "sql", True), ("LDAP1", "ldap", True)]
    shown = run.ok("userstore", "show", "ldap1").stdout
    assert "bind_password" in shown and "********" in shown
    assert SERVICE_PASSWORD not in shown and "username_search_filter" in shown
    data = json.loads(run.ok("userstore", "show", "LDAP1", "--json").stdout)
    assert data["properties"]["bind_password"] == "********"
    assert data["properties"]["case_insensitive_usernames"] is True
    assert run.ok("userstore", "test", "LDAP1").stdout.startswith(
        "userstore LDAP1 is reachable: ok")
    run.ok("user", "add", "LDAP1/alice", "--no-password")
    assert "LDAP1/alice" in run.ok("user", "list", "--domain", "LDAP1").stdout


def test_a_secret_is_never_taken_as_a_value_on_the_command_line(
        run: Cli, slapd_server: Slapd, ldap_tree: LdapTree,
        monkeypatch: pytest.MonkeyPatch) -> None:
    args = [a for a in ldap_args(slapd_server, ldap_tree) if a not in (
        "--secret-stdin", "bind_password")]
    result = run("userstore", "add", "LDAP1", *args, "--set", "bind_password=Plain-secret-1")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "--secret-stdin bind_password" in line and "Plain-secret-1" not in line
    monkeypatch.setenv("LDAP_PW", SERVICE_PASSWORD)
    run.ok("userstore", "add", "LDAP1", *args, "--set", "bind_password=${env:LDAP_PW}")
    with run.iam() as iam:
        assert iam.stores.definitions["LDAP1"].properties["bind_password"] == SecretValue(
            SERVICE_PASSWORD, "${env:LDAP_PW}")
    result = run("userstore", "add", "LDAP2", *args)  # no terminal to prompt: required
    assert result.exit_code == 2 and "bind_password" in one_error_line(result)


def test_an_sql_store_url_is_masked(run: Cli, tmp_path: Path) -> None:
    url = f"postgresql://app:Db-secret-1@127.0.0.1:{free_port()}/hr"
    result = run("userstore", "add", "HR", "--type", "sql", "--set", f"url={url}")
    assert result.exit_code == 2 and "Db-secret-1" not in result.output
    result = run.ok("userstore", "add", "HR", "--type", "sql", "--secret-stdin", "url",
                    input=url + "\n")
    assert "warning: userstore HR is unreachable" in result.stderr
    assert "Db-secret-1" not in result.output
    run.ok("userstore", "add", "FILES", "--type", "sql", "--set",
           f"url=sqlite:///{tmp_path}/files.db")  # no password in it: fine as it is
    for args in (("show", "HR"), ("show", "HR", "--json"), ("list",), ("list", "--json")):
        out = run("userstore", *args).output
        assert "Db-secret-1" not in out
    assert "postgresql://app:***@127.0.0.1" in run.ok("userstore", "show", "HR").stdout
    assert "DOWN: userstore HR is unreachable" in run.ok("userstore", "list").stdout


def test_a_store_that_is_down_shows_in_list_and_test(run: Cli, slapd_server: Slapd,
                                                     ldap_tree: LdapTree) -> None:
    url = f"ldap://127.0.0.1:{free_port()}"
    result = run.ok("userstore", "add", "DOWN", *ldap_args(slapd_server, ldap_tree, url),
                    "--set", "connection_retry_count=0", input=SERVICE_PASSWORD + "\n")
    assert "warning: userstore DOWN is unreachable" in result.stderr
    assert "DOWN: userstore DOWN is unreachable" in run.ok("userstore", "list").stdout
    result = run("userstore", "test", "DOWN")
    assert result.exit_code == 6
    assert "userstore DOWN is unreachable at ldap://127.0.0.1" in one_error_line(result)
    result = run("user", "show", "DOWN/someone")
    assert result.exit_code == 6 and "userstore DOWN" in one_error_line(result)
    run.ok("user", "add", "still-works", "--no-password")  # the other stores keep working


def test_update_disable_enable_remove(run: Cli, slapd_server: Slapd, ldap_tree: LdapTree
                                      ) -> None:
    add_ldap(run, slapd_server, ldap_tree)
    run.ok("user", "add", "LDAP1/bob", "--no-password")
    run.ok("role", "add", "Internal/ops", "--member", "LDAP1/bob")
    assert run.ok("userstore", "update", "LDAP1", "--set", "max_list_length=5",
                  "--description", "People").stdout == "updated userstore LDAP1 (ldap)\n"
    with run.iam() as iam:
        d = iam.stores.definitions["LDAP1"]
        assert d.properties["max_list_length"] == 5 and d.description == "People"
        assert d.properties["bind_password"] == SecretValue(SERVICE_PASSWORD)  # kept
    run.ok("userstore", "update", "LDAP1", "--unset", "max_list_length")
    with run.iam() as iam:
        assert iam.stores.definitions["LDAP1"].properties["max_list_length"] == 100
    result = run("userstore", "update", "LDAP1", "--set", "max_list_length=many")
    assert result.exit_code == 2 and "max_list_length" in one_error_line(result)
    result = run("userstore", "update", "LDAP1", "--set", "no_such_thing=1")
    assert result.exit_code == 2 and "unknown property" in one_error_line(result)

    run.ok("userstore", "disable", "LDAP1")
    assert "disabled" in run.ok("userstore", "list").stdout
    result = run("user", "show", "LDAP1/bob")
    assert result.exit_code == 3 and "userstore LDAP1 is disabled" in one_error_line(result)
    run.ok("userstore", "enable", "LDAP1")
    assert "LDAP1/bob" in run.ok("user", "show", "LDAP1/bob").stdout

    result = run("userstore", "remove", "LDAP1")
    assert result.exit_code == 2 and "--yes" in one_error_line(result)
    assert run.ok("userstore", "remove", "LDAP1", "--yes").stdout == "removed userstore LDAP1\n"
    with run.iam() as iam:
        assert "LDAP1" not in iam.stores.definitions
    result = run("userstore", "show", "LDAP1")
    assert result.exit_code == 3 and "does not exist" in one_error_line(result)
    result = run("userstore", "remove", "PRIMARY", "--yes")
    assert result.exit_code == 2 and "PRIMARY cannot be removed" in one_error_line(result)


def test_add_refuses_an_existing_domain_and_bad_properties(run: Cli) -> None:
    result = run("userstore", "add", "PRIMARY", "--type", "sql")
    assert result.exit_code == 4 and "already exists" in one_error_line(result)
    result = run("userstore", "add", "X1", "--type", "ldap", "--set", "connection_url=ftp://x",
                 "--set", "bind_dn=cn=a,dc=b", "--set", "bind_password=${env:HOME}")
    assert result.exit_code == 2 and "connection_url" in one_error_line(result)
    result = run("userstore", "add", "Internal", "--type", "sql")
    assert result.exit_code == 2 and "reserved" in one_error_line(result)


def test_types_lists_each_property_schema(run: Cli) -> None:
    assert run.ok("userstore", "types").stdout.split() == ["sql", "ldap", "ldap_ro",
                                                           "active_directory"]
    ad = json.loads(run.ok("userstore", "types", "active_directory", "--json").stdout)
    by_name = {p["name"]: p for p in ad["properties"]}
    assert by_name["bind_password"]["secret"] and by_name["bind_password"]["required"]
    assert by_name["username_search_filter"]["default"] == "(&(objectClass=user)(cn=?))"
    assert "write_groups" not in {p["name"] for p in json.loads(run.ok(
        "userstore", "types", "ldap_ro", "--json").stdout)["properties"]}
    result = run("userstore", "types", "nis")
    assert result.exit_code == 2 and "not supported" in one_error_line(result)
