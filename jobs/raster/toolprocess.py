"""A tool's process: started in a private folder with a clean environment, limits and a process
group of its own; stopped, with everything it started, on cancel, at its time limit, or when the
worker that started it is gone. Knows nothing of Django or GDAL.

A worker can die while its tool runs (the OOM killer, a SIGKILL from a supervisor): the tool
itself gets SIGKILL from the kernel then (PR_SET_PDEATHSIG), and what the tool started, which
carries its folder's path in JOBSITE_TOOL_FOLDER, is ended by `sweep_orphans`, which any worker
runs before it starts a tool (at most once a minute) and the periodic repair runs too: it finds
the folders whose worker is gone, ends their processes and removes them. (The kernel's signal
follows the thread that started the tool: start tools from a thread that outlives them, as the
cluster's workers do.)
"""

import ctypes
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from jobsite.gdalpolicy import REFUSING_PROXY

from .io import Cancelled, RasterError

PREFIX = "jobsite-tool-"
OWNER = ".worker"  # beside each folder FOLDER, as FOLDER.worker: who made it (see make_folder)
MARKER = "JOBSITE_TOOL_FOLDER"  # in each tool's environment: its folder
STDERR_TAIL = 2000
KILL_GRACE = 1.0
POLL = 0.1
SWEEP_EVERY = 60.0
# A folder without its record is being made, or was made by a worker of an older jobsite in a
# rolling upgrade: left alone for as long as any tool may run.
UNOWNED_GRACE = 86400.0
KILL_PASSES = 5  # a marked process may fork while the processes are looked through

# What every tool's environment holds besides PATH and HOME: the C locale, one thread per tool
# (OpenMP's threads would add up against the CPU time limit and crowd the other worker), and
# jobsite's GDAL network policy (see jobsite.gdalpolicy), which a child process does not inherit.
BASE_ENVIRONMENT = {
    "LC_ALL": "C", "OMP_NUM_THREADS": "1", "GDAL_NUM_THREADS": "1",
    "GDAL_HTTP_PROXY": REFUSING_PROXY, "GDAL_HTTPS_PROXY": REFUSING_PROXY, "GDAL_HTTP_NETRC": "NO",
    "GDAL_VRT_ENABLE_PYTHON": "NO", "PROJ_NETWORK": "OFF", "no_proxy": "", "NO_PROXY": "",
}
SIGNALS = {signal.SIGKILL: "SIGKILL (out of memory?)", signal.SIGXCPU: "SIGXCPU: its CPU time limit",
           signal.SIGXFSZ: "SIGXFSZ: its file size limit", signal.SIGSEGV: "SIGSEGV"}

BOOT_ID = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before any fork: the child only calls it
_last_sweep = 0.0


def make_folder(scratch=None):
    """A new private folder for one tool run, in `scratch` (the system's temporary folder
    without it), with a record beside it (where the tool does not work) of the worker that made
    it: its host, boot, pid and the pid's start time, so that a reused pid does not pass for it."""
    folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=scratch))
    record_path(folder).write_text(" ".join(_identity(os.getpid())))
    return folder


def remove_folder(folder):
    """Remove a tool's folder and its record."""
    shutil.rmtree(folder, ignore_errors=True)
    record_path(folder).unlink(missing_ok=True)


def record_path(folder):
    return folder.with_name(folder.name + OWNER)


def _identity(pid):
    """(host, boot id, pid, start time in clock ticks since boot) of a running process; OSError
    if there is none."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        raise ProcessLookupError(pid)
    return socket.gethostname(), BOOT_ID, str(pid), fields[19]  # field 22 of stat, counted after the name


def _child_setup(tool):
    """What the child does between fork and exec: its limits, each at most what this process may
    have (a service manager may have lowered the hard limits), and SIGKILL when the worker dies.
    Computed before the fork: the child only calls setrlimit and prctl."""
    wanted = {resource.RLIMIT_CPU: int(tool.time_limit) + 5, resource.RLIMIT_AS: tool.memory_bytes,
              resource.RLIMIT_FSIZE: tool.file_bytes, resource.RLIMIT_CORE: 0}
    limits = []
    for kind, value in wanted.items():
        hard = resource.getrlimit(kind)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        limits.append((kind, (value, value)))
    worker = os.getpid()

    def apply():
        for kind, pair in limits:
            resource.setrlimit(kind, pair)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != worker:  # the worker died before the line above
            os._exit(1)
    return apply


def run(argv, env, tool, folder, progress):
    """Run the tool to its end, or stop its process group on cancel (`progress` returns False:
    Cancelled) or at the time limit (RasterError); RasterError with the tail of its output for
    a non-zero exit."""
    global _last_sweep
    if time.monotonic() - _last_sweep > SWEEP_EVERY:
        _last_sweep = time.monotonic()
        sweep_orphans(tool.scratch)
    environment = {**BASE_ENVIRONMENT, "PATH": tool.path, "HOME": str(folder), "TMPDIR": str(folder), **env,
                   MARKER: str(folder)}
    with open(folder / "stderr.txt", "wb") as stderr:
        try:
            process = subprocess.Popen(argv, cwd=folder, env=environment, stdin=subprocess.DEVNULL,
                                       stdout=stderr, stderr=stderr, start_new_session=True,
                                       preexec_fn=_child_setup(tool), close_fds=True)
        except (OSError, subprocess.SubprocessError) as exc:
            raise RasterError(f"{argv[0]} could not be started: {getattr(exc, 'strerror', None) or exc}") from None
        started = time.monotonic()
        try:
            while True:
                try:
                    code = process.wait(POLL)
                    break
                except subprocess.TimeoutExpired:
                    pass
                elapsed = time.monotonic() - started
                if progress is not None and not progress(min(0.99, elapsed / tool.time_limit)):
                    raise Cancelled("stopped by the progress callback")
                if elapsed > tool.time_limit:
                    raise RasterError(f"{Path(argv[0]).name} ran longer than its time limit of {tool.time_limit:g} s")
        finally:
            _stop(process)
    if code != 0:
        with open(folder / "stderr.txt", "rb") as output:  # its tail only: a tool may write gigabytes
            output.seek(0, os.SEEK_END)
            output.seek(max(0, output.tell() - STDERR_TAIL))
            tail = output.read().decode("utf-8", "replace").strip()
        how = f"was killed by {SIGNALS.get(-code, f'signal {-code}')}" if code < 0 else f"exited with status {code}"
        # Killed from outside (the OOM killer sends SIGKILL): it may pass on another try.
        raise RasterError(f"{Path(argv[0]).name} {how}" + (f": {tail}" if tail else ""),
                          transient=code == -signal.SIGKILL)


def _stop(process):
    """End the tool's whole process group if any of it still runs: SIGTERM, SIGKILL a second later."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(KILL_GRACE)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            process.wait()
            return
    try:
        os.killpg(process.pid, signal.SIGKILL)  # what the tool started may outlive it
    except ProcessLookupError:
        pass
    process.wait()


def sweep_orphans(scratch=None):
    """End the processes of tool folders in `scratch` whose worker is gone, and remove the
    folders. Returns the folders removed."""
    root = Path(scratch or tempfile.gettempdir())
    orphans = [folder for folder in root.glob(f"{PREFIX}*") if folder.is_dir() and _orphaned(folder)]
    if orphans:
        marks = {f"{MARKER}={folder}".encode() for folder in orphans}
        for _ in range(KILL_PASSES):
            if not _kill_marked(marks):
                break
        for folder in orphans:
            remove_folder(folder)
    return orphans


def _orphaned(folder):
    try:
        host, boot, pid, started = record_path(folder).read_text().split()
    except FileNotFoundError:
        try:
            return time.time() - folder.stat().st_mtime > UNOWNED_GRACE
        except FileNotFoundError:
            return False
    except (OSError, ValueError):
        return False  # not ours to judge (another user's, or not a record)
    if host != socket.gethostname():
        return False  # a scratch folder shared with another machine: its workers are its own
    if boot != BOOT_ID:
        return True  # made before this machine last started
    try:
        return _identity(int(pid))[3] != started
    except (OSError, ValueError):
        return True


def _kill_marked(marks):
    """SIGKILL every process whose environment holds one of `marks`; the number killed. Each is
    held by a pidfd before its environment is read, so that a pid reused meanwhile is never hit."""
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            handle = os.pidfd_open(int(entry.name))
        except OSError:  # gone already
            continue
        try:
            environment = (entry / "environ").read_bytes().split(b"\0")
            if marks.intersection(environment):
                signal.pidfd_send_signal(handle, signal.SIGKILL)
                killed += 1
        except OSError:  # gone meanwhile, or another user's
            pass
        finally:
            os.close(handle)
    return killed
