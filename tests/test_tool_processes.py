"""A declared tool's processes end with their job or their worker: cancel through the API on a
real cluster, and a worker killed while its tool runs (the tool and what it started are ended,
their folder removed)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jobs.models import JobStatus, TileStatus
from jobs.raster import toolprocess

from .conftest import BASE_DIR, wait_for, wait_until_final
from .test_declared_types import SLEEPER, declare, gone, write_yaml

SLEEPING_TYPE = """\
    job_types:
      - name: sleeper
        version: "1"
        time_limit: 120
        command: [PYTHON, -c, "SLEEPER", PIDS, "{input}", "{output}"]
    """


def test_cancel_through_the_api_ends_a_running_tool_on_a_real_cluster(index, owner, client_for, start_cluster,
                                                                      monkeypatch, tmp_path):
    pids = tmp_path / "pid"
    path = write_yaml(tmp_path, SLEEPING_TYPE.replace("PYTHON", sys.executable).replace("SLEEPER", SLEEPER)
                      .replace("PIDS", str(pids)))
    declare(monkeypatch, path)
    start_cluster(JOBSITE_JOB_TYPES_FILE=str(path))
    api = client_for(owner)
    created = api.post("/api/v1/jobs/", {"type": "sleeper", "tile_ids": index.ids[:1]}, format="json")
    assert created.status_code == 201, created.json()
    child = Path(f"{pids}.child")
    # each file is made, then written: a file that exists may still be empty
    wait_for(lambda: child.exists() and child.read_text() and pids.read_text(), timeout=60, message="the tool to start")
    tool, grandchild = int(pids.read_text()), int(child.read_text())
    assert not gone(tool, within=0) and not gone(grandchild, within=0)
    folder = Path(os.readlink(f"/proc/{tool}/cwd"))
    assert folder.name.startswith(toolprocess.PREFIX) and folder.exists()
    canceled = api.post(f"/api/v1/jobs/{created.json()['id']}/cancel/")
    assert canceled.status_code == 200, canceled.json()
    assert gone(tool, within=2.5) and gone(grandchild, within=0.5)  # a lease check, a poll, SIGTERM
    job = wait_until_final(created.json()["id"], timeout=30)
    assert job.status == JobStatus.CANCELED
    assert job.tiles.get().status == TileStatus.CANCELED
    wait_for(lambda: not folder.exists(), timeout=5, message="the tool's folder removed by its worker")


WORKER = textwrap.dedent("""\
    import sys
    from jobs.raster import command, toolprocess
    scratch, pids, sleeper = sys.argv[1:]
    tool = command.Tool(argv=(sys.executable, "-c", sleeper, pids), time_limit=60, scratch=scratch)
    toolprocess.run(list(tool.argv), {}, tool, toolprocess.make_folder(scratch), None)
""")


def test_a_tool_whose_worker_dies_is_ended_with_what_it_started_and_its_folder_removed(tmp_path):
    scratch, pids = tmp_path / "scratch", tmp_path / "pid"
    scratch.mkdir()
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(scratch), str(pids), SLEEPER], cwd=BASE_DIR,
                              env={**os.environ, "PYTHONPATH": str(BASE_DIR)})
    child = Path(f"{pids}.child")
    wait_for(child.exists, timeout=30, message="the tool to start")
    tool, grandchild = int(pids.read_text()), int(child.read_text())
    mine = toolprocess.make_folder(scratch)  # a live worker's folder: left alone
    worker.send_signal(signal.SIGKILL)  # as the OOM killer would
    worker.wait()
    assert gone(tool, within=1)  # the kernel's SIGKILL on the worker's death
    assert not gone(grandchild, within=0)  # what the tool started lives on, in its own group
    (folder,) = [f for f in scratch.iterdir() if f != mine and f.is_dir()]
    assert toolprocess.sweep_orphans(scratch) == [folder]
    assert gone(grandchild, within=1) and not folder.exists() and mine.exists()
    assert toolprocess.sweep_orphans(scratch) == []


def test_a_folder_without_its_worker_file_is_only_swept_once_it_is_old(tmp_path):
    folder = tmp_path / f"{toolprocess.PREFIX}new"
    folder.mkdir()
    assert toolprocess.sweep_orphans(tmp_path) == []
    old = time.time() - toolprocess.UNOWNED_GRACE - 1
    os.utime(folder, (old, old))
    assert toolprocess.sweep_orphans(tmp_path) == [folder] and not folder.exists()


@pytest.mark.parametrize("content", ["", "not a record"])
def test_a_folder_whose_record_is_unreadable_is_left_alone(tmp_path, content):
    folder = toolprocess.make_folder(tmp_path)
    toolprocess.record_path(folder).write_text(content)
    assert toolprocess.sweep_orphans(tmp_path) == [] and folder.exists()


def test_a_reused_pid_does_not_pass_for_the_worker_and_another_host_s_folder_is_left_alone(tmp_path):
    reused = toolprocess.make_folder(tmp_path)
    host, boot, pid, started = toolprocess.record_path(reused).read_text().split()
    assert int(pid) == os.getpid()
    toolprocess.record_path(reused).write_text(f"{host} {boot} {pid} {int(started) - 1}")
    elsewhere = toolprocess.make_folder(tmp_path)
    toolprocess.record_path(elsewhere).write_text(f"another-{host} {boot} 1 1")
    rebooted = toolprocess.make_folder(tmp_path)
    toolprocess.record_path(rebooted).write_text(f"{host} another-boot {pid} {started}")
    assert sorted(toolprocess.sweep_orphans(tmp_path)) == sorted([reused, rebooted])
    assert elsewhere.exists() and not reused.exists() and not toolprocess.record_path(reused).exists()
