"""Sandbox peers for services that cannot run on this machine (Google, Salesforce, SPML)."""
