"""Outbound provisioning connectors: one module per connector type."""
