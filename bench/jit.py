"""JIT login of an existing, unchanged user vs a SCIM ``GET /Users?filter=userName eq``.

Both go to the same server (serve's HTTP app on a loopback port, SQLite), one client, in
alternating blocks per round, so the machine's noise hits both alike. The ID tokens are
signed before the clock starts (the identity provider's work, not ours). The server runs in
this process: CPU time is the process's, per request, client included for both.

Target (issue 15): JIT / SCIM <= 2.

    .venv/bin/python bench/jit.py [--requests 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test suite's helpers

from common import record

from core.iam import Iam
from core.identity.events import Initiator
from core.idps import ClaimMapping, IdentityProvider, JitConfig, RoleMapping
from core.inbound import Limits
from core.jit.sandbox import SandboxIdp
from core.passwords import Argon2Params
from tests.scim_api import application, served

APP, IDP = "hr-portal", "corp-sso"


def timed(fn, n: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        fn(i)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n = args.requests
    with tempfile.TemporaryDirectory() as home, \
            Iam.open(home=home, argon2=Argon2Params(1, 8, 1)) as iam:
        admin = Initiator.admin()
        token = application(iam, APP)
        sso = SandboxIdp.create()
        email = iam.claims.resolve("emailaddress")
        iam.identity.add_role(admin, "PRIMARY/engineering")
        iam.save_idp(admin, IdentityProvider(
            IDP, federation=sso.federation("oidc", APP),
            jit=JitConfig(True, associate_local_user=True),
            claim_mappings=(ClaimMapping(email, "email"),),
            role_mappings=(RoleMapping("PRIMARY/engineering", "engineers"),)))
        for i in range(1000):
            iam.identity.add_user(admin, f"user{i}", None, {email: f"u{i}@example.com"})
        # no rate limit: one client outruns 100 requests/s (as in bench/scim_inbound.py)
        with served(iam, Limits(rate=1e9, burst=10**9)) as api, httpx.Client(
                base_url=api.base.removesuffix("/scim2"),
                headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            # a mapped claim and a mapped role, both as the user has them after the first login
            claims = {"sub": "s-7", "preferred_username": "user7", "email": "u7@example.com",
                      "groups": ["engineers"]}
            assert http.post(f"/jit/{IDP}", json={"id_token": sso.id_token(
                APP, claims)}).status_code == 200  # links user7, adds the role: later
            # logins change nothing (each answers 200; that an unchanged login writes only
            # its audit row is tests/test_jit_intake.py's)

            def scim(i: int) -> None:
                r = http.get("/scim2/Users", params={"filter": f'userName eq "user{i % 1000}"'})
                assert r.status_code == 200

            ratios, cpu_ratios = [], []
            for rnd in range(args.rounds):
                tokens = [sso.id_token(APP, claims) for _ in range(n)]

                def jit(i: int, tokens: list[str] = tokens) -> None:
                    r = http.post(f"/jit/{IDP}", json={"id_token": tokens[i]})
                    assert r.status_code == 200, r.text

                s_wall, s_cpu = timed(scim, n)
                j_wall, j_cpu = timed(jit, n)
                ratios.append(j_wall / s_wall)
                cpu_ratios.append(j_cpu / s_cpu)
                print(f"round {rnd + 1}: SCIM GET {n / s_wall:7.1f} req/s "
                      f"{s_cpu / n * 1e3:5.2f} ms CPU/req | JIT {n / j_wall:7.1f} req/s "
                      f"{j_cpu / n * 1e3:5.2f} ms CPU/req | ratio wall {ratios[-1]:.2f} "
                      f"CPU {cpu_ratios[-1]:.2f}", flush=True)
    record(__file__, "15", "JIT login of an unchanged user / SCIM GET by filter, wall",
           ratios, "<= 2", f"CPU {statistics.median(cpu_ratios):.2f}")
    print(f"JIT / SCIM GET: median wall {statistics.median(ratios):.2f} "
          f"(spread {min(ratios):.2f}-{max(ratios):.2f}), median CPU "
          f"{statistics.median(cpu_ratios):.2f} ({min(cpu_ratios):.2f}-"
          f"{max(cpu_ratios):.2f}); target <= 2")


if __name__ == "__main__":
    main()
