"""Sending deliveries: the HTTP client, the worker that claims and applies outcomes, and
the pure decisions beside it (backoff, breaker, pacing), with a bad day's alerts and
health."""
