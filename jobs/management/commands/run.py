"""`make run`'s processes: the web server (uvicorn) and one cluster, stopped together.

Each child runs in a process group of its own, so a Ctrl-C at the terminal (or a signal to make's
process group) reaches this process alone and each child is told to stop exactly once: the cluster
stops its workers itself, and a second signal to its group would stop it again half-way. Closing the
terminal (SIGHUP) stops both too, and a child whose parent dies gets SIGTERM from the kernel, so that
no cluster is left behind in a group of its own.
"""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jobsite.children import stop_with

STOP_GRACE = 30  # seconds a child asked to stop has before it is killed
# A child is asked to stop no sooner than this after its start: the cluster that django-q2 is in
# the middle of starting fails on a SIGTERM with a traceback (its handler needs the sentinel).
START_GRACE = 5


def say(line, stream=None):
    """One line in one unbuffered write, so that a signal handler's line never breaks into another.
    A terminal that is gone (SIGHUP) or a pipe whose reader stopped is no reason to fail."""
    try:
        os.write((stream or sys.stdout).fileno(), (line + "\n").encode())
    except OSError:
        pass


class Command(BaseCommand):
    help = ("Run the web server and one cluster until Ctrl-C, SIGTERM or SIGHUP stops both "
            "(exit status 130 after Ctrl-C, 0 otherwise); a second Ctrl-C kills them.")

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000", help="[HOST:]PORT of the web server")

    def handle(self, addrport, **options):
        self.children = {}  # pid -> (name, Popen)
        self.started, self.deferred = {}, {}  # pid -> when it started; pid -> Popen to stop once START_GRACE has passed
        self.stop_signal = None
        self.stopping_since = None  # when the children were asked to stop
        self.killed = False
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.on_signal)
        host, _, port = addrport.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise CommandError(f"addrport: [HOST:]PORT, e.g. 127.0.0.1:8000, not {addrport!r}")
        # The web server is uvicorn, for the event streams' long-lived connections (jobsite.asgi);
        # it inherits manage.py's JOBSITE_READ_ENV_FILE, so it takes the same settings.
        web = ["-m", "uvicorn", "jobsite.asgi:application", "--host", host.strip("[]") or "127.0.0.1", "--port", port,
               "--lifespan", "off", "--timeout-graceful-shutdown", "3"]
        for name, arguments in (("cluster", [str(settings.BASE_DIR / "manage.py"), "qcluster"]), ("web server", web)):
            process = subprocess.Popen([sys.executable, *arguments], cwd=settings.BASE_DIR, process_group=0,
                                       preexec_fn=stop_with(os.getpid()))
            self.children[process.pid] = (name, process)
            self.started[process.pid] = time.monotonic()
            if self.stop_signal:  # a signal came while the children were being started
                self.terminate(process)
        self.wait_for_children()

    def on_signal(self, signum, frame):
        if self.stop_signal is None:
            self.stop_signal = signum
            for _, process in self.children.values():
                self.terminate(process)
            say("jobsite: stopping the web server and the cluster (Ctrl-C again kills them)")
        elif signum == signal.SIGINT and not self.killed:
            # Only a second Ctrl-C: make passes on a SIGTERM sent to its process group, so the
            # same SIGTERM may arrive twice, and that is no reason to kill anything.
            self.killed = True
            say("jobsite: killing the web server and the cluster")
            for _, process in self.children.values():
                try:
                    os.killpg(process.pid, signal.SIGKILL)  # the cluster's workers with it
                except ProcessLookupError:
                    pass

    def kill_the_stuck(self):
        """A child asked to stop that has not within STOP_GRACE seconds (a cluster caught in the
        middle of starting its workers may miss the signal) is killed, with its workers."""
        if self.stopping_since is None or time.monotonic() - self.stopping_since < STOP_GRACE:
            return
        for name, process in self.children.values():
            say(f"jobsite: the {name} did not stop within {STOP_GRACE} s; killing it", sys.stderr)
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.stopping_since = None

    def terminate(self, process):
        # SIGTERM, not SIGINT: a process still importing Django dies of it quietly, without a
        # KeyboardInterrupt traceback; the cluster stops on it as on Ctrl-C.
        if time.monotonic() - self.started.get(process.pid, 0.0) < START_GRACE:
            self.deferred[process.pid] = process
            return
        self.deferred.pop(process.pid, None)
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()
        try:
            os.kill(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def wait_for_children(self):
        failed = False
        while self.children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                for child in list(self.deferred.values()):
                    self.terminate(child)
                self.kill_the_stuck()
                time.sleep(0.1)
                continue
            if pid not in self.children:
                continue
            name, process = self.children.pop(pid)
            process.returncode = os.waitstatus_to_exitcode(status)
            if self.stop_signal:
                say(f"jobsite: {name} stopped")
            else:
                failed = True
                say(f"jobsite: {name} ended by itself (exit status {process.returncode}); stopping the rest",
                    sys.stderr)
                self.stop_signal = signal.SIGTERM
                for _, other in self.children.values():
                    self.terminate(other)
        if failed:
            sys.exit(1)
        if self.stop_signal == signal.SIGINT:
            sys.exit(130)
