"""The webhook sender: a process of its own beside each cluster's workers, so that no worker
waits for a receiver and a slow or hanging one never holds up tiles.

The cluster's guard loop keeps one running (`keep_running`, every second): it starts
`manage.py send_webhooks`, which gets SIGTERM from the kernel when the cluster ends, however it
ends, and is started again if it ends by itself. The sender looks for due deliveries every
POLL_SECONDS and sends them (notifications.delivery), and prunes old ones every PRUNE_SECONDS.
Several senders (one per cluster host) share the work: each delivery is leased to one.
"""

import logging
import os
import subprocess
import sys
import threading
import time

from django.conf import settings
from django.db import close_old_connections

from jobsite.children import stop_with

from . import delivery

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2
PRUNE_SECONDS = 3600.0
RESTART_SECONDS = 10.0  # a sender that ended is started again at most this often
_running = {"process": None, "started": float("-inf")}


def keep_running():
    """The guard loop's call: have a sender process running."""
    process = _running["process"]
    if process is not None and process.poll() is None:
        return
    if process is not None:
        logger.warning("the webhook sender ended (exit status %s); starting another", process.returncode)
        _running["process"] = None
    if time.monotonic() - _running["started"] < RESTART_SECONDS:
        return
    _running["started"] = time.monotonic()
    _running["process"] = subprocess.Popen([sys.executable, str(settings.BASE_DIR / "manage.py"), "send_webhooks"],
                                           cwd=settings.BASE_DIR, preexec_fn=stop_with(os.getpid()))


def run(stop):
    """Send what is due until `stop` (a threading.Event) is set; a try under way is finished."""
    pruned = float("-inf")
    while not stop.is_set():
        try:
            close_old_connections()
            if time.monotonic() - pruned > PRUNE_SECONDS:
                delivery.prune()
                pruned = time.monotonic()
            if not delivery.deliver(stop=stop):
                stop.wait(POLL_SECONDS)
        except Exception:  # the database went away, say: try again, never end
            logger.exception("sending webhooks failed; trying again")
            close_old_connections()
            stop.wait(1)


def stop_on_signals(signals):
    """A threading.Event set by any of `signals`."""
    import signal

    stop = threading.Event()
    for signum in signals:
        signal.signal(signum, lambda *_: stop.set())
    return stop
