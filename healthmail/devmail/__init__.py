"""The local mail world of `make run` and the tests: a CA, loopback SMTP receivers, a DNS zone file.

Development and test tooling: only the devstack, `seed_demo --publish-dns`, the dev mailbox page and
tests use it; the delivery engine never does. The engine reaches this world through its ordinary
settings (DELIVERY_CA_FILE, DELIVERY_RESOLVER=static, DELIVERY_DNS_ZONE_FILE).
"""
