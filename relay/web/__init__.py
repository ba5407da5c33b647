"""The HTTP surface: the SUBHOOK endpoint, health and metrics, the admin API."""
