"""Retention pages, split by what a compliance officer is doing: policies and records (records.py),
legal holds (holds.py), disposal runs and certificates (runs.py)."""
