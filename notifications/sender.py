"""The webhook sender: a process of its own beside each cluster's workers, so that no worker
waits for a receiver and a slow or hanging one never holds up tiles.

The cluster's guard loop keeps one running (`keep_running`, every second):
1. It starts `manage.py send_webhooks` in a process group of its own (a Ctrl-C at the cluster's
   terminal is the cluster's to handle, not the sender's), which the kernel sends SIGTERM when
   the cluster ends, however it ends.
2. The sender beats on a pipe each time round its loop; a sender that has not beaten for
   JOBSITE_WEBHOOK_SENDER_STALL_SECONDS (stopped, or stuck in a call that never returns) is
   killed, and like one that ended by itself, started again. What it had leased is taken up
   again when the lease runs out.
The sender looks for due deliveries every POLL_SECONDS and sends them (notifications.delivery),
and prunes old ones every PRUNE_SECONDS. Several senders (one per cluster host) share the work:
each delivery is leased to one.
"""

import logging
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.db import close_old_connections

from jobsite.children import stop_with

from . import delivery

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2
PRUNE_SECONDS = 3600.0
FIRST_PRUNE_SECONDS = 60.0
RESTART_SECONDS = 10.0  # a sender that ended is started again at most this often
BATCH_SECONDS = 1.0  # how long one call of delivery.deliver goes on taking new batches
HEARTBEAT_FD = "JOBSITE_SENDER_HEARTBEAT_FD"  # the write end of the pipe, in the sender's environment
_running = {"process": None, "started": float("-inf"), "heartbeat": None, "beat": 0.0, "killed": []}


def keep_running():
    """The guard loop's call: have a sender process running, and one that is not stalled. It never
    waits for a process: a killed one is reaped on a later call."""
    _running["killed"] = [process for process in _running["killed"] if process.poll() is None]
    process = _running["process"]
    if process is not None:
        if process.poll() is None:
            if _heard_from():
                return
            logger.warning("the webhook sender (pid %s) has not beaten for %s s; killing it and starting another",
                           process.pid, settings.WEBHOOK_SENDER_STALL_SECONDS)
            process.kill()
            _running["killed"].append(process)
        else:
            logger.warning("the webhook sender ended (exit status %s); starting another", process.returncode)
        _forget()
    if time.monotonic() - _running["started"] < RESTART_SECONDS:
        return
    _start()


def _start():
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    try:
        _running["process"] = subprocess.Popen(
            [sys.executable, str(settings.BASE_DIR / "manage.py"), "send_webhooks"], cwd=settings.BASE_DIR,
            env={**os.environ, HEARTBEAT_FD: str(write_end)}, pass_fds=(write_end,), process_group=0,
            preexec_fn=stop_with(os.getpid()))
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
        _running["started"] = time.monotonic()
    _running["heartbeat"], _running["beat"] = read_end, time.monotonic()


def _heard_from():
    """Whether the sender has beaten within the stall limit (what it wrote is read and dropped)."""
    try:
        while os.read(_running["heartbeat"], 4096):
            _running["beat"] = time.monotonic()
    except BlockingIOError:
        pass
    return time.monotonic() - _running["beat"] < settings.WEBHOOK_SENDER_STALL_SECONDS


def _forget():
    os.close(_running["heartbeat"])
    _running.update(process=None, heartbeat=None)


class Stop:
    """Asked for by a signal handler: a plain flag, which a handler can set whatever the loop is
    doing (setting a threading.Event takes a lock the interrupted loop may hold)."""

    def __init__(self):
        self.asked = False

    def set(self, *_):
        self.asked = True

    def is_set(self):
        return self.asked

    def wait(self, seconds):
        deadline = time.monotonic() + seconds
        while not self.asked and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def on_signals(signals):
    """A Stop that any of `signals` sets."""
    stop = Stop()
    for signum in signals:
        signal.signal(signum, stop.set)
    return stop


def _beat():
    """Tell the guard loop this sender is alive (when it was started by one)."""
    fd = os.environ.get(HEARTBEAT_FD)
    if fd is None:
        return
    try:
        os.write(int(fd), b".")
    except BlockingIOError:  # the guard has not read for a while: the pipe is full of beats already
        pass
    except OSError:  # the guard is gone: the kernel ends this process with it
        pass


def run(stop):
    """Send what is due until `stop` is set; a try under way is finished."""
    fd = os.environ.get(HEARTBEAT_FD)
    if fd is not None:
        os.set_blocking(int(fd), False)
        # In a process group of its own it is in the background of the cluster's terminal, where a
        # terminal set to `tostop` would stop it at its first log line.
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    pruned = time.monotonic() - PRUNE_SECONDS + FIRST_PRUNE_SECONDS  # what is owed goes first
    while not stop.is_set():
        _beat()
        try:
            close_old_connections()
            if time.monotonic() - pruned > PRUNE_SECONDS:
                delivery.prune(each_part=_beat)
                pruned = time.monotonic()
            if not delivery.deliver(seconds=BATCH_SECONDS, stop=stop):
                stop.wait(POLL_SECONDS)
        except Exception:  # the database went away, say: try again, never end
            logger.exception("sending webhooks failed; trying again")
            close_old_connections()
            stop.wait(1)
