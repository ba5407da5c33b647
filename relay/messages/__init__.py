"""Messages (SPEC 14): what each event says about its message (lifecycle.py), the
follower that folds events into messages, and their statistics."""
