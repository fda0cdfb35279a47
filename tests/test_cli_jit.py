"""``mware-iam sandbox idp`` mints a login, ``mware-iam jit login`` sends it through the
intake, ``user show`` lists the association; a forged token is refused. (The replay
cache lives in one process: each CLI run has its own, see core/jit/replay.py.)"""

from __future__ import annotations

import json
from pathlib import Path

from core.identity.events import Initiator
from core.idps import IdentityProvider, JitConfig
from tests.scim_api import application
from tests.test_cli import Cli, run  # noqa: F401  (the fixture)


def test_sandbox_login_through_the_cli(run: Cli, tmp_path: Path) -> None:  # noqa: F811
    with run.iam() as iam:
        application(iam, "hr-portal")
        iam.save_idp(Initiator.admin(), IdentityProvider("corp-sso", jit=JitConfig(True)))
    token = run.ok("sandbox", "idp", "corp-sso", "--username", "dana", "--configure",
                   "--claim", "email=dana@example.com").output.strip()
    path = tmp_path / "token"
    path.write_text(token)
    out = json.loads(run.ok("jit", "login", "corp-sso", "--app", "hr-portal",
                            "--token-file", str(path)).output)
    assert (out["user"], out["created"]) == ("PRIMARY/dana", True)
    assert "corp-sso: dana" in run.ok("user", "show", "PRIMARY/dana").output
    by = "JIT login through application hr-portal via identity provider corp-sso"
    logins = json.loads(run.ok("audit", "--action", "jit.login", "--json").output)["items"]
    assert [(e["by"], e["actor"], e["target"]) for e in logins] == [
        (by, "jit:corp-sso", "PRIMARY/dana")]
    assert by in run.ok("audit", "--target", "PRIMARY/dana").output  # every row of it
    shown = json.loads(run.ok("user", "show", "PRIMARY/dana", "--json").output)
    assert shown["federated"] == ["corp-sso: dana"]
    path.write_text(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
    forged = run("jit", "login", "corp-sso", "--app", "hr-portal", "--token-file", str(path))
    assert forged.exit_code != 0 and "signature" in forged.output
    assert "Traceback" not in forged.output
    with run.iam() as iam:
        iam.remove_idp(Initiator.admin(), "corp-sso")
    assert json.loads(run.ok("user", "show", "PRIMARY/dana", "--json").output)[
        "federated"] == []  # an identity provider removed takes its associations along
