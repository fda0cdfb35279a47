"""The SCIM benchmarks' client applications in a home: ``bench0``.. with PRIMARY as inbound
domain and a fresh token each. It imports only the engine, so another build's Python can
run it on that build's home (``scim_inbound_ab.py``: a home is migrated by the build that
serves it):

    OTHER/.venv/bin/python bench/scim_clients.py HOME N    # prints one token a line
"""

from __future__ import annotations

import sys
from pathlib import Path

from core.apps import Application
from core.iam import Iam
from core.identity.events import Initiator


def add_clients(home: Path, clients: int, db: str | None = None) -> list[str]:
    """Applications ``bench0``.. with PRIMARY as inbound domain and a fresh token each."""
    with Iam.open(home=str(home), db=db) as iam:
        admin = Initiator.admin()
        tokens = []
        for i in range(clients):
            name = f"bench{i}"
            if name not in iam.app_names():
                iam.save_app(admin, Application(name=name, inbound_domain="PRIMARY"))
            tokens.append(iam.issue_token(admin, name))
        return tokens


if __name__ == "__main__":
    print("\n".join(add_clients(Path(sys.argv[1]), int(sys.argv[2]),
                                sys.argv[3] if len(sys.argv) > 3 else None)))
