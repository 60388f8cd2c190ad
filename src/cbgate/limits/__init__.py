"""Admission control: concurrency, requests and tokens per minute, token quota (see base.py)."""
