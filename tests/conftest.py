from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.iam import Iam
from core.identity.events import Initiator
from core.passwords import Argon2Params
from tests.ldap_server import LdapTree, Slapd, SlapdUnavailable, running_slapd
from tests.peers import FaultProxy, PeerUnavailable, ScimServer, scim_server
from tests.peers import fault_proxy as peer_fault_proxy
from tests.servers import BACKENDS, database_url, unavailable

#: Cheap argon2id for tests (the parameters are configurable; production uses the defaults).
FAST_ARGON2 = Argon2Params(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """An empty system database on SQLite, PostgreSQL and MariaDB in turn."""
    with database_url(request.param, str(tmp_path)) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/system.db"


@pytest.fixture
def iam(tmp_path, db_url: str) -> Iterator[Iam]:
    """A fresh deployment on each backend."""
    with Iam.open(home=str(tmp_path / "home"), db=db_url, argon2=FAST_ARGON2) as deployment:
        yield deployment


@pytest.fixture
def sqlite_iam(tmp_path) -> Iterator[Iam]:
    """A fresh deployment on SQLite only (for tests that are not about the backend)."""
    with Iam.open(home=str(tmp_path / "home"), argon2=FAST_ARGON2) as deployment:
        yield deployment


@pytest.fixture
def admin() -> Initiator:
    return Initiator.admin()


# ---------------------------------------------------------------- outbound peers (SCIM)
SCIM_BEARER_TOKEN = "test-bearer-token"


def _scim_server(*args: str, bearer_tokens: tuple[str, ...] = ()) -> Iterator[ScimServer]:
    try:
        with scim_server(*args, bearer_tokens=bearer_tokens) as server:
            yield server
    except PeerUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def scim_server_process() -> Iterator[ScimServer]:
    """One ``scim2-server`` for the session (each test takes a fresh tenant of it)."""
    yield from _scim_server()


@pytest.fixture(scope="session")
def scim_bearer_server() -> Iterator[ScimServer]:
    """A ``scim2-server --bearer-token`` (token: ``SCIM_BEARER_TOKEN``)."""
    yield from _scim_server(bearer_tokens=(SCIM_BEARER_TOKEN,))


@pytest.fixture
def scim_peer(scim_server_process: ScimServer) -> str:
    """The SCIM base URL (…/v2) of a real, empty SCIM 2.0 service of its own."""
    return scim_server_process.tenant()


@pytest.fixture
def fault_proxy(scim_peer: str) -> Iterator[FaultProxy]:
    """A scriptable proxy in front of ``scim_peer``; ``proxy.url(scim_peer)`` goes through it."""
    with peer_fault_proxy(scim_peer) as proxy:
        yield proxy


# ---------------------------------------------------------------- directory (OpenLDAP slapd)
@pytest.fixture(scope="session")
def slapd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """One throwaway slapd for the session (each test takes a subtree of its own)."""
    try:
        with running_slapd(tmp_path_factory.mktemp("slapd")) as server:
            yield server
    except SlapdUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture
def ldap_tree(slapd_server: Slapd) -> LdapTree:
    """An empty ``ou=Users`` / ``ou=Groups`` subtree of its own in ``slapd_server``."""
    return slapd_server.new_tree()
