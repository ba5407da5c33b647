"""What the parts of the app share, as typed keys of the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from relay.capacity import Budget
from relay.config import AdminToken
from relay.delivery.worker import Worker
from relay.metrics import Metrics
from relay.runtime import Runtime
from relay.store import Store

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
