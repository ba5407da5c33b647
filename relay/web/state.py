"""What the parts of the app share, as typed keys of the aiohttp application: every key is
here, set once by create_app (app.py) or the console's setup, read by the handlers."""

from __future__ import annotations

from aiohttp import web

from relay.capacity import Budget
from relay.config import AdminToken
from relay.delivery.worker import Worker
from relay.metrics import Metrics
from relay.runtime import Runtime
from relay.store import Store
from relay.web.auth import Guard, SignInLimit
from relay.web.traffic import Traffic

#: the running config; a handler reads ``app[RUNTIME].current`` once (one RunningConfig)
RUNTIME = web.AppKey("runtime", Runtime)
STORE = web.AppKey("store", Store)
METRICS = web.AppKey("metrics", Metrics)
WORKER = web.AppKey("worker", Worker)
#: The request key of the ``admin.tokens`` entry an admin request was let in with (its
#: name says who paused a destination).
ADMIN_ENTRY = web.RequestKey("admin_entry", AdminToken)
#: bytes of unfinished header blocks and bodies being read, shared with the serving layer
BUDGET = web.AppKey("budget", Budget)
#: seconds the message follower waits once caught up (create_app's ``message_poll``)
MESSAGE_POLL = web.AppKey("message_poll", float)
#: wrong bearer tokens per client address on the admin API
GUARD = web.AppKey("admin_guard", Guard)
#: sign-in attempts per client address on the console
SIGN_IN_LIMIT = web.AppKey("console_sign_in_limit", SignInLimit)
#: the console overview's samples of the counters
TRAFFIC = web.AppKey("console_traffic", Traffic)
#: Sessions signed out on this instance (nonce -> expiry): refused until they expire.
SIGNED_OUT = web.AppKey("console_signed_out", dict[str, float])
