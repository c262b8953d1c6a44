"""Inbox folders: files delivered onto storage become their users' data files once complete (a
rename, a .done marker, or a size that stays), with an upload's checks in full; refused files move
to rejected/ with the reason beside them, and hostile ones (links, devices, payloads that point
elsewhere) are read no further than an upload is; a waiting job starts when its file arrives."""

import os
import time

import pytest
from django.core.exceptions import ImproperlyConfigured

from datafiles.inbox import CLAIMED, scan_inboxes
from datafiles.models import DataFile
from jobs.models import Job, JobStatus
from jobs.services.submit import job_submit
from jobsite.environment import envinboxes

from .conftest import wait_for, wait_until_final
from .datafile_samples import COLOR_TABLE, geotiff_bytes
from .test_security_drivers import SECRET, raw_vrt


@pytest.fixture
def inbox(settings, tmp_path, owner, media):
    """A folder of one sub-folder per user; the owner's."""
    root = tmp_path / "inbox"
    (root / owner.username).mkdir(parents=True)
    settings.INBOXES = [(str(root), None)]
    return root / owner.username


def test_a_file_counts_once_renamed_from_its_temporary_name_and_starts_the_job_that_waited_for_it(
        index, owner, inbox, django_capture_on_commit_callbacks):
    job = job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids[:1], inputs={"color_table": "ramp.txt"})
    for partial in ("ramp.txt.part", ".ramp.txt.Xa1b2", "ramp.txt.filepart"):
        (inbox / partial).write_text(COLOR_TABLE)
    assert scan_inboxes() == {"stored": 0, "rejected": 0} and not DataFile.objects.exists()
    os.rename(inbox / "ramp.txt.part", inbox / "ramp.txt")
    with django_capture_on_commit_callbacks(execute=True):
        assert scan_inboxes() == {"stored": 1, "rejected": 0}
    datafile = DataFile.objects.get(owner=owner, name="ramp.txt")
    assert datafile.kind == "text" and datafile.metadata["lines"] == 5
    assert not (inbox / "ramp.txt").exists() and not list((inbox / CLAIMED).iterdir())
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED


def test_with_markers_a_file_counts_once_its_done_marker_is_there(owner, inbox, settings, tmp_path):
    settings.INBOX_COMPLETE, settings.INBOX_DONE = "marker", "processed"
    (inbox / "dem.tif").write_bytes(geotiff_bytes(tmp_path))
    assert scan_inboxes()["stored"] == 0
    (inbox / "dem.tif.done").touch()
    assert scan_inboxes()["stored"] == 1
    assert DataFile.objects.get(name="dem.tif").kind == "raster"
    assert sorted(path.name for path in inbox.iterdir()) == [CLAIMED, "processed"]
    assert [path.name for path in (inbox / "processed").iterdir()] == ["dem.tif"]


def test_when_size_decides_a_file_counts_once_it_has_not_changed_for_the_time_set(owner, inbox, settings):
    settings.INBOX_COMPLETE, settings.INBOX_STABLE_SECONDS = "stable", 30
    path = inbox / "ramp.txt"
    path.write_text(COLOR_TABLE[:20])  # still being written
    assert scan_inboxes()["stored"] == 0
    path.write_text(COLOR_TABLE)
    written = time.time() - 31
    os.utime(path, (written, written))
    assert scan_inboxes()["stored"] == 1 and DataFile.objects.get(name="ramp.txt").size == len(COLOR_TABLE)


def test_hostile_files_are_refused_into_rejected_with_the_reason_and_nothing_outside_is_read(
        owner, inbox, tmp_path, client_for):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    os.symlink(secret, inbox / "linked.txt")
    os.link(secret, inbox / "hardlinked.txt")
    os.mkfifo(inbox / "pipe.txt")
    (inbox / "pointing.tif").write_bytes(raw_vrt(secret))
    (inbox / "program.exe").write_bytes(b"MZ")
    counts = scan_inboxes()
    assert counts == {"stored": 0, "rejected": 5} and not DataFile.objects.exists()
    rejected = inbox / "rejected"
    reasons = {path.name.removesuffix(".error.txt"): path.read_text().strip()
               for path in rejected.iterdir() if path.name.endswith(".error.txt")}
    assert reasons["linked.txt"] == "it is a symbolic link; only regular files are read"
    assert reasons["hardlinked.txt"] == "it has other hard links; only a file of its own is read"
    assert reasons["pipe.txt"].startswith("it is not a regular file")
    assert reasons["pointing.tif"].startswith("file: pointing.tif cannot be read as .tif") and SECRET not in reasons["pointing.tif"]
    assert "program.exe" in reasons
    assert secret.read_text() == SECRET and os.path.islink(rejected / "linked.txt")  # moved, never followed


def test_a_second_refused_file_of_the_same_name_keeps_the_first(owner, inbox):
    for _ in range(2):
        (inbox / "x.exe").write_bytes(b"MZ")
        scan_inboxes()
    names = {path.name for path in (inbox / "rejected").iterdir()}
    assert len(names) == 4 and {"x.exe", "x.exe.error.txt"} < names
    stamped = (names - {"x.exe", "x.exe.error.txt"} - {name for name in names if name.endswith(".error.txt")}).pop()
    assert f"{stamped}.error.txt" in names


def test_a_file_replaces_the_users_file_of_its_name_and_a_folder_of_no_user_is_left_alone(
        owner, inbox, tmp_path, settings):
    (inbox / "ramp.txt").write_text(COLOR_TABLE)
    scan_inboxes()
    (inbox / "ramp.txt").write_text(COLOR_TABLE + "1000 255 0 0\n")
    scan_inboxes()
    assert DataFile.objects.get(name="ramp.txt").metadata["lines"] == 6
    stranger = inbox.parent / "nobody"
    stranger.mkdir()
    (stranger / "ramp.txt").write_text(COLOR_TABLE)
    assert scan_inboxes() == {"stored": 0, "rejected": 0} and (stranger / "ramp.txt").exists()


def test_a_folder_of_one_user_and_a_claim_left_by_a_dead_scan_goes_back(owner, settings, tmp_path, media):
    folder = tmp_path / "owners-inbox"
    (folder / CLAIMED).mkdir(parents=True)
    settings.INBOXES, settings.TASK_TIMEOUT = [(str(folder), owner.username)], 0
    (folder / CLAIMED / "123-456-ramp.txt").write_text(COLOR_TABLE)  # its scan died
    time.sleep(0.01)
    assert scan_inboxes()["stored"] == 1 and DataFile.objects.get(owner=owner, name="ramp.txt")


@pytest.mark.parametrize("value", ["inbox", "/srv/in=", "relative=alice"])
def test_an_inbox_setting_that_is_no_absolute_path_stops_the_process_naming_it(monkeypatch, value):
    monkeypatch.setenv("JOBSITE_INBOXES", value)
    with pytest.raises(ImproperlyConfigured, match="JOBSITE_INBOXES"):
        envinboxes("JOBSITE_INBOXES")


# Without notifications a file waits for the next scan: the scan period, then its check (0.3 s).
@pytest.mark.parametrize("notify,scan_seconds,within", [("1", "600", 1.0), ("0", "2", 3.0)])
def test_on_a_real_cluster_a_file_renamed_into_the_inbox_starts_the_job_that_waited_for_it(
        start_cluster, index, owner, media, tmp_path, notify, scan_seconds, within):
    root = tmp_path / "inbox"
    (root / owner.username).mkdir(parents=True)
    running = start_cluster(JOBSITE_INBOXES=str(root), JOBSITE_INBOX_NOTIFY=notify,
                            JOBSITE_INBOX_SCAN_SECONDS=scan_seconds)
    wait_for(lambda: "the inbox watcher watches 1 inbox folder(s)" in running.log_path.read_text(), timeout=30)
    job = job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids[:1], inputs={"color_table": "ramp.txt"})
    (root / owner.username / "ramp.txt.part").write_text(COLOR_TABLE)
    delivered = time.monotonic()
    os.rename(root / owner.username / "ramp.txt.part", root / owner.username / "ramp.txt")
    wait_for(lambda: Job.objects.get(pk=job.pk).status != JobStatus.WAITING, timeout=30, interval=0.02)
    latency = time.monotonic() - delivered
    print(f"inbox latency, notifications {'on' if notify == '1' else 'off'} (scans every {scan_seconds} s): "
          f"{latency:.2f} s")
    assert latency < within
    assert wait_until_final(job.pk).status == JobStatus.SUCCEEDED
