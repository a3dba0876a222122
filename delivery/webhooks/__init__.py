"""Webhooks out: signed message events POSTed to tenants' endpoints, retried with backoff."""
