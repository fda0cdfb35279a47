"""The connector registry reads the ``mware_iam.connectors`` entry points of installed
distributions: here a real (tiny) distribution put on ``sys.path`` for one test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import registry as reg
from connectors.scim2 import Scim2Connector
from core.errors import InvalidInput


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    reg._entry_points.cache_clear()
    reg._load.cache_clear()
    yield
    reg._entry_points.cache_clear()
    reg._load.cache_clear()


def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entries: str,
            module: str = "") -> None:
    """A distribution ``plugin`` with these entry points (and module ``plugin_mod``)."""
    info = tmp_path / "plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[mware_iam.connectors]\n{entries}\n")
    if module:
        (tmp_path / "plugin_mod.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "plugin_mod", raising=False)


def test_the_built_in_connector_registers_through_its_entry_point(fresh_registry) -> None:
    assert reg.connector_class("scim2") is Scim2Connector
    assert reg.registry()["scim2"] is Scim2Connector.spec
    with pytest.raises(InvalidInput, match=r"connector type 'nope' is not known \(known: .*"
                                           r"scim2"):
        reg.spec_for("nope")


def test_a_separate_package_adds_a_connector(tmp_path, monkeypatch, fresh_registry) -> None:
    install(tmp_path, monkeypatch, "echo = plugin_mod:Echo", (
        "from dataclasses import replace\n"
        "from connectors.scim2 import Scim2Connector\n"
        "class Echo(Scim2Connector):\n"
        "    spec = replace(Scim2Connector.spec, type='echo', label='Echo')\n"))
    assert reg.spec_for("echo").label == "Echo"
    assert set(reg.registry()) >= {"echo", "scim2"}


@pytest.mark.parametrize(("entry", "module", "said"), [
    ("broken = plugin_absent:Missing", "", "cannot be loaded: ModuleNotFoundError"),
    ("broken = plugin_mod:Thing", "class Thing: pass\n", "is not a Connector subclass"),
    ("broken = connectors.scim2:Scim2Connector", "", "its spec.type must be 'broken'"),
])
def test_a_broken_entry_point_is_named(tmp_path, monkeypatch, fresh_registry,
                                       entry, module, said) -> None:
    install(tmp_path, monkeypatch, entry, module)
    with pytest.raises(reg.BrokenConnector) as broken:
        reg.registry()
    assert f"connector entry point {entry.split(' = ')[0]} = {entry.split(' = ')[1]!r}" \
        in broken.value.message
    assert said in broken.value.message
    assert reg.connector_class("scim2") is Scim2Connector  # the others still load
