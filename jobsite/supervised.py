"""A manage.py command that runs as a process of its own beside each cluster's workers (the webhook
sender, the inbox watcher), kept running by the cluster's guard loop (jobs.broker.every_second).

`SupervisedCommand.keep_running`, every second:
1. starts `manage.py COMMAND` in a process group of its own (a Ctrl-C at the cluster's terminal is
   the cluster's to handle, not the command's), which the kernel sends SIGTERM when the cluster
   ends, however it ends;
2. reads the beats the command writes on a pipe each time round its loop (`beat`): a command that
   has not beaten for its stall time (stopped, or stuck in a call that never returns) is killed,
   and like one that ended by itself, started again, at most every RESTART_SECONDS.
It never waits for a process: a killed one is reaped on a later call.
"""

import logging
import os
import signal
import subprocess
import sys
import time

from django.conf import settings

from .children import stop_with

logger = logging.getLogger(__name__)

RESTART_SECONDS = 10.0  # a command that ended is started again at most this often
HEARTBEAT_FD = "JOBSITE_SUPERVISED_HEARTBEAT_FD"  # the write end of the pipe, in the command's environment


class SupervisedCommand:
    def __init__(self, command, label, stall_seconds):
        self.command, self.label = command, label
        self.stall_seconds = stall_seconds  # () -> seconds, read when it is needed (tests change settings)
        self.process, self.started, self.heartbeat, self.beat, self.killed = None, float("-inf"), None, 0.0, []

    def keep_running(self):
        self.killed = [process for process in self.killed if process.poll() is None]
        if self.process is not None:
            if self.process.poll() is None:
                if self._heard_from():
                    return
                logger.warning("%s (pid %s) has not beaten for %s s; killing it and starting another", self.label,
                               self.process.pid, self.stall_seconds())
                self.process.kill()
                self.killed.append(self.process)
            else:
                logger.warning("%s ended (exit status %s); starting another", self.label, self.process.returncode)
            self._forget()
        if time.monotonic() - self.started < RESTART_SECONDS:
            return
        self._start()

    def _start(self):
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        try:
            self.process = subprocess.Popen(
                [sys.executable, str(settings.BASE_DIR / "manage.py"), self.command], cwd=settings.BASE_DIR,
                env={**os.environ, HEARTBEAT_FD: str(write_end)}, pass_fds=(write_end,), process_group=0,
                preexec_fn=stop_with(os.getpid()))
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
            self.started = time.monotonic()
        self.heartbeat, self.beat = read_end, time.monotonic()

    def _heard_from(self):
        """Whether the command has beaten within its stall time (what it wrote is read and dropped)."""
        try:
            while os.read(self.heartbeat, 4096):
                self.beat = time.monotonic()
        except BlockingIOError:
            pass
        return time.monotonic() - self.beat < self.stall_seconds()

    def _forget(self):
        os.close(self.heartbeat)
        self.process, self.heartbeat = None, None


def started_supervised():
    """In the command: get ready to beat, if a guard loop started it."""
    fd = os.environ.get(HEARTBEAT_FD)
    if fd is not None:
        os.set_blocking(int(fd), False)
        # In a process group of its own it is in the background of the cluster's terminal, where a
        # terminal set to `tostop` would stop it at its first log line.
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)


def beat():
    """In the command: tell the guard loop it is alive (when one started it)."""
    fd = os.environ.get(HEARTBEAT_FD)
    if fd is None:
        return
    try:
        os.write(int(fd), b".")
    except BlockingIOError:  # the guard has not read for a while: the pipe is full of beats already
        pass
    except OSError:  # the guard is gone: the kernel ends this process with it
        pass


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
