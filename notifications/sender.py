"""The webhook sender: a process of its own beside each cluster's workers, so that no worker
waits for a receiver and a slow or hanging one never holds up tiles. The cluster's guard loop keeps
one running (jobsite.supervised): a sender that has not beaten for
JOBSITE_WEBHOOK_SENDER_STALL_SECONDS is killed and started again. What it had leased is taken up
again when the lease runs out.

The sender looks for due deliveries every POLL_SECONDS and sends them (notifications.delivery),
and prunes old ones every PRUNE_SECONDS. Several senders (one per cluster host) share the work:
each delivery is leased to one.
"""

import logging
import time

from django.conf import settings
from django.db import close_old_connections

from jobsite.supervised import SupervisedCommand, beat, started_supervised

from . import delivery

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2
PRUNE_SECONDS = 3600.0
FIRST_PRUNE_SECONDS = 60.0
BATCH_SECONDS = 1.0  # how long one call of delivery.deliver goes on taking new batches

keep_running = SupervisedCommand("send_webhooks", "the webhook sender",
                                 lambda: settings.WEBHOOK_SENDER_STALL_SECONDS).keep_running


def run(stop):
    """Send what is due until `stop` is set; a try under way is finished."""
    started_supervised()
    pruned = time.monotonic() - PRUNE_SECONDS + FIRST_PRUNE_SECONDS  # what is owed goes first
    while not stop.is_set():
        beat()
        try:
            close_old_connections()
            if time.monotonic() - pruned > PRUNE_SECONDS:
                delivery.prune(each_part=beat)
                pruned = time.monotonic()
            if not delivery.deliver(seconds=BATCH_SECONDS, stop=stop):
                stop.wait(POLL_SECONDS)
        except Exception:  # the database went away, say: try again, never end
            logger.exception("sending webhooks failed; trying again")
            close_old_connections()
            stop.wait(1)
