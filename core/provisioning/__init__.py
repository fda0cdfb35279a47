"""Outbound provisioning: planner, durable outbox, executor, workers, status, operations."""
