"""Child processes that end with the process that started them."""

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
LIBC = ctypes.CDLL(None)  # loaded here: loading a library between fork and exec is not safe


def stop_with(parent, signum=signal.SIGTERM):
    """A preexec_fn for a child: `signum` when `parent` dies (even of SIGKILL; strictly, when the
    thread that started the child ends); and if it died before that was asked for (between the
    fork and here), exit at once."""
    def arrange():
        LIBC.prctl(PR_SET_PDEATHSIG, signum)
        if os.getppid() != parent:
            os._exit(1)
    return arrange
