"""``validate_file``: every error of a configuration file, at its exact line and column."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from core.configfile.errors import ConfigError, ConfigInvalid
from core.configfile.files import SAMPLE_CONFIG, validate_file
from core.configfile.loader import ALIAS_BUDGET, MAX_BYTES, MAX_DEPTH
from core.errors import InvalidInput
from core.iam import Iam


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deployment.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def found(path: Path, iam: Iam | None = None) -> list[tuple[int, int, str]]:
    return [(e.line, e.column, e.message) for e in validate_file(path, iam)]


def only(path: Path, iam: Iam | None = None) -> tuple[int, int, str]:
    errors = found(path, iam)
    assert len(errors) == 1, errors
    return errors[0]


def test_the_sample_is_valid() -> None:
    assert validate_file(SAMPLE_CONFIG) == []


def test_an_empty_file_is_a_valid_empty_configuration(tmp_path: Path) -> None:
    assert found(write(tmp_path, "# nothing yet\n")) == []


def test_error_prints_as_file_line_column_message() -> None:
    err = ConfigError("d.yaml", 3, 7, "unknown key 'x'")
    assert str(err) == "d.yaml:3:7: unknown key 'x'"
    assert str(ConfigInvalid([err, err])).splitlines() == [str(err), str(err)]
    assert isinstance(ConfigInvalid([err]), InvalidInput)


def test_malformed_yaml_points_at_the_problem(tmp_path: Path) -> None:
    path = write(tmp_path, """
        users:
          - username: alice
            claims: [givenname
          - username: bob
        """)
    line, column, message = only(path)
    assert (line, column) == (4, 13)
    assert message.startswith("malformed YAML: expected ',' or ']', but got ':'")
    assert "line 3, column 13" in message  # where the unclosed list started


def test_a_tab_is_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "tabs.yaml"
    path.write_text("users:\n\t- username: alice\n")
    assert only(path)[:2] == (2, 1)


def test_merge_keys_and_recursive_aliases_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, """
        users:
          - &alice {username: alice}
          - <<: *alice
            password: Wonderland1
        roles: &loop
          - *loop
        """)
    errors = found(path)
    assert errors[0] == (3, 5, "merge keys (<<) are not supported: write the values out")
    assert (5, 8, "an alias refers to a value that contains it (recursion)") in errors


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, """
        applications:
          - name: hr-portal
            fail_on_blocking_failure: sometimes
        """)
    assert only(path) == (3, 31, "fail_on_blocking_failure: expected true or false, got text")


def test_a_number_where_text_is_expected_says_to_quote_it(tmp_path: Path) -> None:
    path = write(tmp_path, """
        users:
          - username: alice
            claims: {country: NO, employeenumber: 12345}
        """)
    assert found(path) == [
        (3, 23, "country: expected text, got true/false (put the value in quotes to keep it "
                "as text)"),
        (3, 43, "employeenumber: expected text, got a number (put the value in quotes to "
                "keep it as text)"),
    ]


def test_a_password_of_the_wrong_type_is_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, """
        users:
          - username: alice
            password: 98765432109
        """)
    line, column, message = only(path)
    assert (line, column) == (3, 15) and "98765432109" not in message


def test_unknown_key_names_the_expected_keys(tmp_path: Path) -> None:
    path = write(tmp_path, """
        identity_providers:
          - name: scim-peer
            jit:
              enabled: true
              scheme_name: provision_silently
        """)
    assert only(path) == (5, 7, "unknown key 'scheme_name' (expected one of: enabled, "
                                "userstore, scheme, associate_local_user)")


def test_unknown_section(tmp_path: Path) -> None:
    path = write(tmp_path, """
        roles: []
        groups:
          - name: x
        """)
    line, column, message = only(path)
    assert (line, column) == (2, 1) and message.startswith("unknown section 'groups'")


def test_missing_required_key(tmp_path: Path) -> None:
    path = write(tmp_path, """
        applications:
          - name: hr-portal
            outbound:
              - idp: scim-peer
                blocking: true
        """)
    assert only(path) == (4, 9, "missing required key 'connector'")


def test_duplicate_key(tmp_path: Path) -> None:
    path = write(tmp_path, """
        users:
          - username: alice
            password: ${env:ALICE_PASSWORD:-Wonderland1}
            username: alicia
        """)
    assert only(path) == (4, 5, "duplicate key 'username' (first given at line 2, column 5)")


def test_unknown_connector_property_points_at_its_key(tmp_path: Path) -> None:
    path = write(tmp_path, """
        identity_providers:
          - name: scim-peer
            connectors:
              - type: scim2
                properties:
                  scim2-user-ep: http://127.0.0.1:8787/v2/Users
                  scim2-colour: blue
        """)
    line, column, message = only(path)
    assert (line, column) == (7, 11)
    assert message.startswith("scim2-colour: unknown property (known: scim2-user-ep,")


def test_bad_enum_values(tmp_path: Path) -> None:
    path = write(tmp_path, """
        identity_providers:
          - name: scim-peer
            jit: {enabled: true, scheme: silently}
            connectors:
              - type: scim2
                properties:
                  scim2-user-ep: http://127.0.0.1:8787/v2/Users
                  scim2-authentication-mode: TOKEN
        """)
    assert found(path) == [
        (3, 34, "scheme: expected one of provision_silently, prompt_consent, "
                "prompt_password_consent, prompt_username_password_consent, got 'silently'"),
        (8, 38, "scim2-authentication-mode: 'TOKEN' is not valid: expected one of NONE, "
                "BASIC, BEARER, API_KEY"),
    ]


def test_a_connector_endpoint_other_than_http_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, """
        identity_providers:
          - name: scim-peer
            connectors:
              - type: scim2
                properties:
                  scim2-user-ep: ftp://127.0.0.1/v2/Users
        """)
    line, _column, message = only(path)
    assert line == 6 and "expected a URL starting with http:// or https://" in message


def test_a_required_connector_property_is_reported_at_the_properties(tmp_path: Path) -> None:
    path = write(tmp_path, """
        identity_providers:
          - name: partner
            connectors:
              - type: scim2
                properties:
                  scim2-user-ep: http://127.0.0.1:8787/v2/Users
                  scim2-authentication-mode: BEARER
        """)
    assert only(path) == (6, 11, "scim2-access-token: is required when "
                                 "scim2-authentication-mode is BEARER")


def test_missing_env_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARTNER_TOKEN_FOR_TEST", raising=False)
    path = write(tmp_path, """
        identity_providers:
          - name: partner
            connectors:
              - type: scim2
                properties:
                  scim2-user-ep: http://127.0.0.1:8787/v2/Users
                  scim2-authentication-mode: BEARER
                  scim2-access-token: ${env:PARTNER_TOKEN_FOR_TEST}
        """)
    line, column, message = only(path)
    assert (line, column) == (8, 31)
    assert message.startswith("scim2-access-token: ${env:PARTNER_TOKEN_FOR_TEST}: the "
                              "environment variable is not set")
    monkeypatch.setenv("PARTNER_TOKEN_FOR_TEST", "t0ken")
    assert found(path) == []


def test_a_malformed_reference_is_an_error_not_a_literal(tmp_path: Path) -> None:
    path = write(tmp_path, """
        users:
          - username: alice
            password: ${vault:alice}
        """)
    assert only(path) == (3, 15, "password: ${vault:alice} is not a secret reference (use "
                                 "${env:NAME}, ${env:NAME:-default} or ${file:PATH})")


def test_duplicate_users_and_roles_in_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, """
        roles:
          - name: Internal/auditors
          - name: internal/auditors
        users:
          - username: alice
          - username: PRIMARY/alice
        """)
    assert found(path) == [
        (3, 11, "role Internal/auditors is listed twice (first at line 2, column 11)"),
        (6, 15, "user PRIMARY/alice is listed twice (first at line 5, column 15)"),
    ]


def test_every_error_is_reported_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, """
        userstores:
          - domain: PRIMARY
            enabled: false
            properties: {case_insensitive_usernames: maybe}
        users:
          - username: alice
            claims: {emailaddress: not-an-email}
          - password: Wonderland1
        applications:
          - name: hr-portal
            outbound:
              - {idp: partner, connector: scim2, blocking: 1}
        """)
    assert [(line, col) for line, col, _ in found(path)] == [
        (3, 14), (4, 46), (7, 28), (8, 5), (12, 52)]


def test_unknown_domain(tmp_path: Path, sqlite_iam: Iam) -> None:
    path = write(tmp_path, """
        users:
          - username: alice
          - username: SALES/bob
        """)
    assert found(path) == []  # offline a domain of the deployment is assumed
    assert only(path, sqlite_iam) == (3, 15, "unknown userstore domain 'SALES' (known: "
                                             "PRIMARY)")


def test_a_domain_defined_in_the_file_is_known(tmp_path: Path, sqlite_iam: Iam) -> None:
    path = write(tmp_path, f"""
        userstores:
          - domain: sales
            properties: {{url: "sqlite:///{tmp_path}/sales.db"}}
        users:
          - username: SALES/bob
        """)
    assert found(path, sqlite_iam) == []


def test_unknown_role(tmp_path: Path, sqlite_iam: Iam) -> None:
    path = write(tmp_path, """
        roles:
          - name: PRIMARY/engineering
        users:
          - username: alice
            roles: [PRIMARY/engineering, Internal/auditors]
        """)
    assert only(path, sqlite_iam) == (
        5, 34, "unknown role Internal/auditors: define it under roles, or use a role of the "
               "deployment")


def test_a_user_cannot_join_a_group_of_another_store(tmp_path: Path) -> None:
    path = write(tmp_path, """
        roles:
          - name: SALES/team
            members: [alice]
        """)
    assert only(path) == (3, 15, "group SALES/team can only hold users of SALES, not "
                                 "PRIMARY/alice")


def test_outbound_target_to_unknown_idp(tmp_path: Path, sqlite_iam: Iam) -> None:
    path = write(tmp_path, """
        identity_providers:
          - name: scim-peer
            connectors:
              - {type: scim2, properties: {scim2-user-ep: "http://127.0.0.1:8787/v2/Users"}}
        applications:
          - name: resident
            outbound:
              - {idp: scim-peer, connector: scim2}
              - {idp: scim-per, connector: scim2}
              - {idp: scim-peer, connector: spml}
        """)
    assert found(path, sqlite_iam) == [
        (9, 15, "unknown identity provider 'scim-per': define it under identity_providers, "
                "or use one of the deployment"),
        (10, 37, "identity provider scim-peer has no 'spml' connector (it has: scim2)"),
    ]


def test_unknown_claim(tmp_path: Path, sqlite_iam: Iam) -> None:
    path = write(tmp_path, """
        claims:
          - uri: http://wso2.org/claims/badge
            display_name: Badge
        users:
          - username: alice
            claims: {badge: "1234", givnname: Alice}
        """)
    assert only(path, sqlite_iam) == (
        6, 29, "unknown claim 'givnname': use a local claim URI or short name such as "
               "emailaddress, or define it under claims")


def test_unreadable_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot be read"):
        validate_file(tmp_path / "missing.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"users:\n  - username: Ren\xe9\n")
    with pytest.raises(InvalidInput, match="is not UTF-8 text"):
        validate_file(tmp_path / "latin1.yaml")


# ---------------------------------------------------------------- hostile files
def test_alias_expansion_beyond_the_budget_is_refused_at_the_alias(tmp_path: Path) -> None:
    # "Billion laughs": each level repeats the one before nine times (9**8 values in all).
    lines = ["a: &a [" + ", ".join(["lol"] * 9) + "]"]
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]"
              for i in range(8)]
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    line, _column, message = only(path)
    assert line == 1 and message == (
        f"refused: aliases expand to more than {ALIAS_BUDGET:,} values: write the values out")


def test_aliases_within_the_budget_still_work(tmp_path: Path) -> None:
    path = write(tmp_path, """
        roles:
          - &r {name: Internal/a}
        x: [*r, *r]
        """)
    assert all("alias" not in message for _l, _c, message in found(path))


def test_deep_nesting_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("users:\n  - " + "[" * 20_000 + "]" * 20_000 + "\n")
    line, _column, message = only(path)
    assert (line, message) == (2, f"refused: nested more than {MAX_DEPTH} levels deep")


def test_a_file_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# padding\n" * (MAX_BYTES // 10 + 1))
    assert only(path) == (1, 1, f"refused: the file is larger than {MAX_BYTES // 2**20} MiB")


def test_a_nul_character_and_a_huge_integer_are_errors_at_their_line(tmp_path: Path) -> None:
    nul = tmp_path / "nul.yaml"
    nul.write_text("users:\n  - username: a\x00b\n")
    line, column, message = only(nul)
    assert (line, column) == (2, 16) and "#x0000 is not allowed" in message
    huge = write(tmp_path, "users:\n  - username: " + "9" * 5000 + "\n")
    errors = found(huge)
    assert (2, 15) in [(line, column) for line, column, _m in errors]
    assert any("5000 digits" in message for _l, _c, message in errors)


def test_invalid_utf8_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes(b"users:\n  - username: Ren\xe9\n")
    with pytest.raises(InvalidInput, match=r"latin1.yaml:2: is not UTF-8 text \(byte 24\)"):
        validate_file(tmp_path / "latin1.yaml")
