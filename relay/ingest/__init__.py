"""Taking a push in: its signature, identity, admission and the event it becomes (the
SUBHOOK endpoint itself is relay/web/subhook.py)."""
