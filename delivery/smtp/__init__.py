"""SMTP transport: prepared messages in, per-recipient outcomes with TLS evidence out (docs/delivery.md)."""
