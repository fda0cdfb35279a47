"""JIT provisioning: federated logins (verified OIDC ID tokens or SAML 2.0 responses) that
create, update and link local users, which then flow to the application's JIT targets.

Modules: :mod:`.errors` (what a refused login answers), :mod:`.federation` (the settings'
checks), :mod:`.keys` (JWKS, ``jwks_uri`` and certificates), :mod:`.replay`,
:mod:`.oidc`, :mod:`.saml` (verification), :mod:`.associations` (federated subject ->
local user), :mod:`.intake` (the login itself), :mod:`.http` (``POST /jit/{idp}``).
"""
