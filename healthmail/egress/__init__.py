"""Requests the platform makes to addresses others give it (webhook targets, SMART clients' JWK Set
URLs): the SSRF guard (`ssrf.py`, with its tables of special-purpose addresses in `addresses.py`)
and connections pinned to the address the guard checked (`http.py`)."""
