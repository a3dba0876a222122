"""Tenants' sender domains: DKIM keys (generated, sealed, rotated) and the DNS records to publish."""
