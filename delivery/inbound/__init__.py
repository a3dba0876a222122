"""Inbound feedback: bounces (RFC 3464 DSNs and other MTAs' plain-text bounces), complaints (ARF,
RFC 5965), authentication reports (RFC 6591, DMARC aggregate), classified by one table (classify.py)."""
