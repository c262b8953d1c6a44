"""Reading untrusted files in a short-lived child process with limits.

The web and the cluster never open an uploaded file's bytes for the first time themselves: the
inspection at upload and the preview of a raster run in a child (`python -m datafiles.sandbox`)
that, before it reads anything,

1. limits its own address space (memory), CPU time, the size of files it writes and its open
   files (setrlimit); the parent also kills it past a wall-clock time-out;
2. leaves the network: as root it moves into a network namespace of its own, which has no
   interface but a loopback that is down; elsewhere into a new user and network namespace where
   the kernel allows that; failing both, GDAL's own configuration (jobsite/gdalpolicy.py, which
   the child applies with no allowed host) is what keeps it off the network;
3. starts with an environment of a few harmless variables: no SECRET_KEY, no DATABASE_URL.

A file that breaks a limit is reported as Unreadable with a message that says which, so that the
caller answers 400; the web worker itself never runs out of memory, hangs or crashes on a file.
Knows nothing of Django.
"""

import ctypes
import json
import logging
import os
import resource
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from .formats import DEFAULT_LIMITS, Limits, Refused, StoredFile, Unreadable

BASE_DIR = Path(__file__).resolve().parent.parent
# Passed on to the child; everything else in the environment stays behind.
ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TZ", "GDAL_DATA", "PROJ_DATA", "PROJ_LIB", "OPENBLAS_CORETYPE",
               "OPENBLAS_L2_SIZE")
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
OPEN_FILES = 256

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Confinement:
    """The limits of one child."""

    seconds: int = 60  # of CPU time; the wall clock allows twice that
    memory_bytes: int = 2 * 1024**3  # address space
    output_bytes: int = 64 * 1024**2  # the largest file it may write (a preview)


DEFAULT_CONFINEMENT = Confinement()


def inspect(stored, limits=DEFAULT_LIMITS, confinement=DEFAULT_CONFINEMENT):
    """(kind, metadata) of a stored file, read in a child; Unreadable says what is wrong."""
    answer = _run({"action": "inspect", "file": asdict(stored), "limits": asdict(limits)}, stored, confinement)
    return answer["kind"], answer["metadata"]


def preview(stored, out_path, size=256, limits=DEFAULT_LIMITS, confinement=DEFAULT_CONFINEMENT):
    """Write a PNG preview of a raster to `out_path`, in a child; Unreadable says what is wrong."""
    _run({"action": "preview", "file": asdict(stored), "limits": asdict(limits), "out": str(out_path), "size": size},
         stored, confinement)


def map_copy(stored, kind, out_path, limits=DEFAULT_LIMITS, confinement=DEFAULT_CONFINEMENT):
    """Write the copy of a raster or vector that maps show (datafiles.mapping) to `out_path`, in a
    child; Unreadable says what is wrong."""
    _run({"action": "map", "kind": kind, "file": asdict(stored), "limits": asdict(limits), "out": str(out_path)},
         stored, confinement)


def color_table(stored, limits=DEFAULT_LIMITS, confinement=DEFAULT_CONFINEMENT):
    """Whether GDAL reads a text file as a colour table (datafiles.metadata.color_table_answer), in
    a child; Unreadable when the child could not tell."""
    return _run({"action": "color_table", "file": asdict(stored), "limits": asdict(limits)}, stored,
                confinement)["color_table"]


def isolation(confinement=DEFAULT_CONFINEMENT):
    """How a child is kept off the network on this machine ("network namespace", "user and
    network namespace" or "GDAL configuration only"), and the names in its environment."""
    answer = _run({"action": "isolation"}, None, confinement)
    return answer["isolation"], answer["environment"]


def _run(request, stored, confinement):
    request["confinement"] = asdict(confinement)
    env = {name: os.environ[name] for name in ENVIRONMENT if name in os.environ}
    env.update(OPENBLAS_NUM_THREADS="1", GDAL_CACHEMAX="128", PROJ_NETWORK="OFF")
    name = stored.name if stored else "the file"
    try:
        done = subprocess.run([sys.executable, "-E", "-s", "-m", "datafiles.sandbox"], input=json.dumps(request).encode(),
                              capture_output=True, timeout=2 * confinement.seconds, cwd=BASE_DIR, env=env)
    except subprocess.TimeoutExpired:
        raise Unreadable(f"reading {name} took longer than {2 * confinement.seconds} s", transient=True) from None
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        answer = None
    if done.returncode == -signal.SIGXCPU:
        raise Unreadable(f"reading {name} needs more than {confinement.seconds} s of CPU time")
    if not isinstance(answer, dict):
        # The child's own stderr may name paths of this machine: the operator's log has it, the user not.
        logger.warning("the reader of %s stopped (%s): %s", name, _ended(done.returncode),
                       done.stderr.decode(errors="replace")[-2000:])
        # Killed from outside (the machine out of memory, a restart): not the file's doing. Anything
        # else (an error, a crash in GDAL) happens again with the same file.
        raise Unreadable(f"{name} could not be read: the reader stopped ({_ended(done.returncode)})",
                         transient=done.returncode == -signal.SIGKILL)
    if answer.get("refused"):
        raise Refused(answer["refused"])
    if answer.get("unreadable"):
        raise Unreadable(answer["unreadable"])
    return answer


def _ended(returncode):
    if returncode < 0:
        return f"signal {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


# The child.

def _confine(confinement):
    memory, seconds = confinement["memory_bytes"], confinement["seconds"]
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (confinement["output_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))
    return _leave_network()


def _leave_network():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) == 0:
        return "network namespace"
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
        return "user and network namespace"
    return "GDAL configuration only"


def _memory_message(name, confinement):
    memory = confinement["memory_bytes"]
    shown = f"{memory / 1024**3:g} GiB" if memory >= 1024**3 else f"{memory // 1024**2} MiB"
    return f"reading {name} needs more than {shown} of memory"


def main():
    request = json.loads(sys.stdin.buffer.read())
    isolation = _confine(request["confinement"])
    from jobsite import gdalpolicy

    gdalpolicy.configure(allowed_hosts=())
    if request["action"] == "isolation":
        return {"isolation": isolation, "environment": sorted(os.environ)}
    from . import metadata

    stored, limits = StoredFile(**request["file"]), Limits(**request["limits"])
    try:
        if request["action"] == "inspect":
            kind, found = metadata.inspect(stored, limits)
            return {"kind": kind, "metadata": found}
        if request["action"] == "color_table":
            return {"color_table": metadata.color_table_answer(stored)}
        if request["action"] == "map":
            from . import mapping

            copy = mapping.raster_copy if request["kind"] == "raster" else mapping.vector_copy
            copy(stored, request["out"])
            return {"written": request["out"]}
        metadata.preview_png(stored, request["out"], request["size"])
        return {"written": request["out"]}
    except Refused as exc:
        return {"refused": str(exc)}
    except Unreadable as exc:
        return {"unreadable": str(exc)}
    except (TypeError, ValueError) as exc:  # what the file holds broke the reading code: it will again
        return {"unreadable": f"{stored.name} could not be read: {stored.scrub(str(exc))}"}
    except MemoryError:
        return {"unreadable": _memory_message(stored.name, request["confinement"])}
    except RuntimeError as exc:  # GDAL's, past the checks
        if "memory" in str(exc).lower() or "cannot allocate" in str(exc).lower():
            return {"unreadable": _memory_message(stored.name, request["confinement"])}
        return {"unreadable": f"{stored.name} could not be read: {stored.scrub(str(exc))}"}


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main()))
