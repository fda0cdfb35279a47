"""django-scim2 as a persisting SCIM 2.0 provider, the inbound benchmark's second peer
(``bench/scim_inbound.py``; settings and how it runs: ``scimpeer.settings``)."""
