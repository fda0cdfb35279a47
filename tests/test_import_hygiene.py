"""The engine is headless: ``core`` imports, all of it, where Textual cannot be imported.

Each check runs in a fresh interpreter so that nothing this test session already imported
(pytest-textual-snapshot imports Textual) can hide a stray import.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# pkgutil.walk_packages alone skips directories without __init__.py (namespace packages),
# so each directory is walked with pkgutil.iter_modules. core/migrations holds
# Alembic scripts, which run only inside Alembic, not importable modules.
WALK_CORE_WITHOUT_TEXTUAL = """
import importlib, json, pkgutil, sys
from pathlib import Path
sys.modules["textual"] = None  # from here on, any import of textual raises ImportError

import core
root = Path(core.__file__).parent
names = []
for directory in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
    parts = directory.relative_to(root.parent).parts
    if "migrations" in parts or "__pycache__" in parts:
        continue
    package = ".".join(parts)
    names += [f"{package}.{m.name}" for m in pkgutil.iter_modules([str(directory)])
              if not m.ispkg or (directory / m.name / "__init__.py").exists()]
for name in names:
    importlib.import_module(name)
print(json.dumps(names))
"""

CLI_WITHOUT_TEXTUAL = """
import json, sys
import click
from core.cli.main import cli
context = click.Context(cli)
for name in cli.list_commands(context):  # every command's module (they load lazily)
    assert cli.get_command(context, name) is not None, name
print(json.dumps(sorted(m for m in sys.modules if m == "textual" or m.startswith("textual."))))
"""


#: What ``mware-iam tui`` imports before the console's first frame: the CLI's root, the tui
#: command and the console's shell. None of the engine's heavy modules may be among them
#: (they load in a thread behind the first frame).
CONSOLE_START = """
import json, sys
import click
from core.cli.main import cli
assert cli.get_command(click.Context(cli), "tui") is not None
import tui.app
heavy = ("sqlalchemy", "alembic", "pydantic", "httpx", "ldap3", "argon2", "scim2_models",
         "yaml", "cryptography")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy
                        or m in ("core.iam", "core.identity.service", "core.cli.users"))))
"""

#: The ``tui`` command itself, up to where it hands the console its opener: nothing it runs
#: before the first frame may load the engine either.
CONSOLE_COMMAND = """
import json, os, sys, tempfile
os.environ["TEXTUAL_DRIVER"] = "headless"  # past the terminal check; nothing is drawn
import tui.app
heavy = ("sqlalchemy", "alembic", "pydantic", "httpx", "ldap3", "argon2", "scim2_models",
         "yaml", "cryptography", "uvicorn")
def run_console(*args, **kwargs):
    print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy
                            or m in ("core.iam", "core.identity.service", "core.cli.serve",
                                     "core.http.app", "core.http.server"))))
tui.app.run_console = run_console
from core.cli.main import cli
cli.main(["--home", tempfile.mkdtemp(), "tui"], standalone_mode=False)
"""

#: Opening a userstore and reading it: the directory and SQL stores never talk HTTP, so the
#: connectors (and httpx under them) stay unloaded.
OPEN_A_STORE = """
import json, sys, tempfile
from pathlib import Path
from cryptography.fernet import Fernet
from core.db import SystemDB
from core.passwords import PasswordHashing
from core.secrets import SecretBox
from core.userstores.router import UserstoreRouter
db = SystemDB(f"sqlite:///{Path(tempfile.mkdtemp()) / 'system.db'}")
db.migrate()
with db.transaction() as conn:
    UserstoreRouter.seed_primary(conn)
stores = UserstoreRouter(db, PasswordHashing(), SecretBox(Fernet.generate_key()))
stores.load()
assert stores.store("PRIMARY").count_users() == 0
print(json.dumps(sorted(m for m in sys.modules
                        if m.split(".")[0] in ("httpx", "httpcore", "connectors"))))
"""


def _run(script: str) -> str:
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_every_core_module_imports_without_textual() -> None:
    imported = json.loads(_run(WALK_CORE_WITHOUT_TEXTUAL))
    # the walk really went through the engine (a walk that finds nothing proves nothing)
    assert {"core.iam", "core.db", "core.identity.service", "core.userstores.sql"} <= set(
        imported)
    expected = {".".join(p.relative_to(ROOT).with_suffix("").parts)
                for p in (ROOT / "core").rglob("*.py")
                if "migrations" not in p.parts and p.name != "__init__.py"}
    assert expected <= set(imported)


def test_the_cli_entry_point_does_not_import_textual() -> None:
    if importlib.util.find_spec("core.cli.main") is None:
        pytest.skip("core/cli/main.py is not written yet")
    assert json.loads(_run(CLI_WITHOUT_TEXTUAL)) == []


def test_the_console_paints_before_the_engine_is_imported() -> None:
    assert json.loads(_run(CONSOLE_START)) == []
    assert json.loads(_run(CONSOLE_COMMAND)) == []


def test_opening_a_userstore_loads_no_http_client() -> None:
    assert json.loads(_run(OPEN_A_STORE)) == []
