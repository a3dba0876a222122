"""Inbound reports: delivery status notifications (RFC 3464) and complaints (ARF, RFC 5965)."""
