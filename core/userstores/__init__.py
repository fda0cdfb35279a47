"""Userstores: one protocol (``base``), its SQL and LDAP implementations, and the router."""
