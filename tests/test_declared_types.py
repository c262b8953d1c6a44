"""Job types declared in YAML files: command-line tools run per tile with their halo, equal to the
tool run on the whole raster; every bad file refused naming file and line; parameters that try to
smuggle in options or shell syntax land as single literal arguments or are refused; tools that
hang, fail, or write nothing are stopped and reported."""

import ast
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from osgeo import gdal

from jobs.declared import DeclarationError, load_files
from jobs.jobtypes import JOB_TYPES
from jobs.models import Job, JobStatus
from jobs.raster import command
from jobs.raster.io import Cancelled, GridTile, IndexGrid, RasterError, crs_wkt_from_epsg
from jobs.services.submit import job_submit
from jobsite.exceptions import Rejected

from .conftest import BASE_DIR, EPSG, NODATA
from .test_execution import merged_pixels, run

EXAMPLE = BASE_DIR / "job-types.example.yaml"
PATH = os.environ.get("PATH", os.defpath)


def declare(monkeypatch, *paths):
    """Register the job types of `paths` as the site would at start, for this test only."""
    for name, kind in load_files(paths, taken=JOB_TYPES, path_variable=PATH).items():
        monkeypatch.setitem(JOB_TYPES, name, kind)


def write_yaml(tmp_path, text, name="types.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def whole_gdaldem(whole, processing, *options):
    out = Path(whole).with_name(f"whole-{processing}.tif")
    subprocess.run(["gdaldem", processing, str(whole), str(out), "-q", *options], check=True)
    return gdal.Open(str(out)).ReadAsArray()


@pytest.mark.parametrize("name,processing,options", [
    ("tri", "TRI", ["-alg", "Riley"]), ("tpi", "TPI", []), ("roughness", "roughness", [])])
def test_a_declared_gdaldem_type_equals_the_tool_run_on_the_whole_raster(index, owner, media, monkeypatch,
                                                                        name, processing, options):
    declare(monkeypatch, EXAMPLE)
    job = run(job_submit(owner=owner, job_type=name, tile_ids=index.ids))
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert np.array_equal(merged_pixels(job), whole_gdaldem(index.whole, processing, *options))


def whole_saga(whole, args):
    """A saga_cmd tool run once on the whole raster (as SAGA grids), as an array."""
    folder = Path(whole).parent / f"saga-{args[0]}-{args[1]}"
    folder.mkdir(exist_ok=True)
    gdal.Translate(str(folder / "whole.sdat"), str(whole), format="SAGA")
    argv = [part.replace("{input}", str(folder / "whole.sdat")).replace("{output}", str(folder / "out.sdat"))
            for part in args]
    subprocess.run(["saga_cmd", *argv], check=True, capture_output=True, cwd=folder)
    return gdal.Open(str(folder / "out.sdat")).ReadAsArray()


@pytest.mark.parametrize("name,params,args", [
    ("saga-slope", {"method": "6"}, ["ta_morphometry", "0", "-ELEVATION", "{input}", "-SLOPE", "{output}",
                                     "-METHOD", "6", "-UNIT_SLOPE", "1"]),
    ("saga-hillshade", {"azimuth": 300, "altitude": 30}, [
        "ta_lighting", "0", "-ELEVATION", "{input}", "-SHADE", "{output}", "-METHOD", "0", "-AZIMUTH", "300.0",
        "-DECLINATION", "30.0"]),
])
def test_a_declared_saga_type_equals_saga_run_on_the_whole_raster(index, owner, media, monkeypatch, name, params,
                                                                  args):
    declare(monkeypatch, EXAMPLE)
    job = run(job_submit(owner=owner, job_type=name, tile_ids=index.ids, params=params))
    assert job.status == JobStatus.SUCCEEDED, job.error
    expected = whole_saga(index.whole, args)
    result = merged_pixels(job)
    assert np.array_equal(result == -99999, expected == -99999)
    assert np.array_equal(result, expected)


def whole_grass(whole, unit, zscale):
    """The example's GRASS program run once on the whole raster, as an array."""
    kind = JOB_TYPES["grass-slope"]
    out = Path(whole).with_name(f"whole-grass-{unit}.tif")
    argv = [part.replace("{input}", str(whole)).replace("{output}", str(out)).replace("{format}", unit)
            .replace("{zscale}", repr(float(zscale))) for part in kind.tool.argv]
    subprocess.run(argv, check=True, capture_output=True, cwd=out.parent,
                   env={"PATH": os.defpath, "HOME": str(out.parent), "LC_ALL": "C"})
    return gdal.Open(str(out)).ReadAsArray()


def test_a_declared_grass_type_equals_grass_run_on_the_whole_raster(index, owner, media, monkeypatch):
    declare(monkeypatch, EXAMPLE)
    job = run(job_submit(owner=owner, job_type="grass-slope", tile_ids=index.ids,
                         params={"format": "percent", "zscale": 2}))
    assert job.status == JobStatus.SUCCEEDED, job.error
    expected = whole_grass(index.whole, "percent", 2)
    result = merged_pixels(job)
    assert (result != -9999).sum() > 0.9 * result.size
    assert np.array_equal(result, expected)


def test_without_the_halo_the_same_comparison_finds_seams(index, owner, media, monkeypatch, tmp_path):
    text = EXAMPLE.read_text().replace("name: tpi", "name: tpi-no-halo").replace("halo: 1", "halo: 0")
    declare(monkeypatch, write_yaml(tmp_path, text))
    job = run(job_submit(owner=owner, job_type="tpi-no-halo", tile_ids=index.ids))
    different = merged_pixels(job) != whole_gdaldem(index.whole, "TPI")
    assert different.any() and different[:, 63:65].any()  # along the first column of tile edges


def test_a_type_that_cannot_be_tiled_runs_once_over_the_mosaic(index, owner, media, monkeypatch, tmp_path):
    text = EXAMPLE.read_text().replace("name: tpi", "name: tpi-whole").replace("    halo: 1\n", "    tiled: false\n", 2)
    declare(monkeypatch, write_yaml(tmp_path, text))
    monkeypatch.setattr(command, "PIXELS_AT_ONCE", 7 * 250)  # its output converted in many blocks of 7 rows
    assert not JOB_TYPES["tpi-whole"].tiled
    job = run(job_submit(owner=owner, job_type="tpi-whole", tile_ids=index.ids))
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert np.array_equal(merged_pixels(job), whole_gdaldem(index.whole, "TPI"))
    assert sorted(p.name for p in (media / "jobs" / str(job.pk) / "out").iterdir()) == ["thumbnail.png", "tpi-whole.tif"]
    with pytest.raises(DeclarationError, match="a type that is not tiled sees the whole mosaic: leave halo out"):
        load_files([write_yaml(tmp_path, text.replace("tiled: false", "tiled: false\n    halo: 1", 1), "again.yaml")],
                   taken=JOB_TYPES, path_variable=PATH)


def test_an_untiled_type_gets_the_mosaic_in_its_own_input_format(index, owner, media, monkeypatch, tmp_path):
    text = EXAMPLE.read_text().replace("name: saga-slope", "name: saga-slope-whole")
    text = text.replace("    halo: 1\n    output: {data_type: Float32, nodata: -99999}\n    time_limit: 300\n    input_format",
                        "    tiled: false\n    output: {data_type: Float32, nodata: -99999}\n    time_limit: 300\n"
                        "    input_format", 1)
    declare(monkeypatch, write_yaml(tmp_path, text))
    assert not JOB_TYPES["saga-slope-whole"].tiled and JOB_TYPES["saga-slope-whole"].tool.input_format == "SAGA"
    job = run(job_submit(owner=owner, job_type="saga-slope-whole", tile_ids=index.ids))
    assert job.status == JobStatus.SUCCEEDED, job.error
    expected = whole_saga(index.whole, ["ta_morphometry", "0", "-ELEVATION", "{input}", "-SLOPE", "{output}",
                                        "-METHOD", "6", "-UNIT_SLOPE", "1"])
    assert np.array_equal(merged_pixels(job), expected)
    output = gdal.Open(str(media / "jobs" / str(job.pk) / "out" / "saga-slope-whole.tif"))
    assert output.GetSpatialRef().GetAuthorityCode(None) == str(EPSG)  # not what SAGA's copy keeps


def test_a_job_type_whose_own_merge_breaks_fails_its_job_not_the_task(index, owner, media, monkeypatch):
    import dataclasses

    slope = JOB_TYPES["slope"]

    @dataclasses.dataclass(frozen=True)
    class Broken(type(slope)):
        def merge(self, **kwargs):
            raise TypeError("a bug in a site's job type")

    monkeypatch.setitem(JOB_TYPES, "slope", Broken(**{f.name: getattr(slope, f.name) for f in dataclasses.fields(slope)}))
    job = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2]))
    assert job.status == JobStatus.FAILED
    assert job.error == "merge failed: an error in the job type's merge (the cluster's log has it)"


def test_a_program_given_as_a_path_is_found_beside_its_file_and_braces_can_be_literal(index, owner, media,
                                                                                        monkeypatch, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    script = tools / "copy-with-label"
    script.write_text(f"#!{sys.executable}\n"
                      "import shutil, sys\n"
                      "assert sys.argv[3] == '{x} {label}', sys.argv\n"
                      "shutil.copy(sys.argv[1], sys.argv[2])\n")
    script.chmod(0o755)
    declare(monkeypatch, write_yaml(tmp_path, """\
        job_types:
          - name: copy
            version: "1"
            params: [{name: label, type: string, pattern: "[a-z]+", default: x}]
            command: [./tools/copy-with-label, "{input}", "{output}", "{{x}} {{{label}}}"]
        """))
    assert JOB_TYPES["copy"].tool.argv[0] == str(script)
    job = run(job_submit(owner=owner, job_type="copy", tile_ids=index.ids[:2], params={"label": "label"}))
    assert job.status == JobStatus.SUCCEEDED, (job.error, [t.error for t in job.tiles.all()])


def test_the_api_names_a_declaring_file_without_its_folder(index, owner, client_for, monkeypatch):
    declare(monkeypatch, EXAMPLE)
    listed = client_for(owner).get("/api/v1/job-types/tri/").json()
    assert listed["source"] == "file job-types.example.yaml" and str(BASE_DIR) not in str(listed)
    assert JOB_TYPES["tri"].source == f"file {EXAMPLE}"  # the admin's


def test_check_job_types_lists_the_example(capsys):
    call_command("check_job_types", str(EXAMPLE))
    out = capsys.readouterr().out
    assert "tri (version 1, halo 1): gdaldem" in out and "tpi (version 1, halo 1)" in out
    assert "saga-slope (version 1, halo 1): saga_cmd" in out and "grass-slope (version 1, halo 1): grass" in out
    assert "6 job types in 1 file(s): all fine" in out


BAD = {
    "not-yaml": ("job_types: [\n  - name: x\n", "types.yaml:2: is not YAML"),
    "unknown-key": ("""\
        job_types:
          - name: shade
            version: "1"
            colour: red
            command: [gdaldem, hillshade, "{input}", "{output}"]
        """, "types.yaml:4: job type shade: colour: is not a key here; the keys are command, description, env"),
    "bad-type": ("""\
        job_types:
          - name: shade
            version: "1"
            halo: two
            command: [gdaldem, hillshade, "{input}", "{output}"]
        """, "types.yaml:4: job type shade: halo: 'two' is not of type 'integer'"),
    "placeholder": ("""\
        job_types:
          - name: shade
            version: "1"
            command: [gdaldem, hillshade, "{input}", "{output}", -z, "{zfactor}"]
        """, "types.yaml:4: job type shade: command.5: the placeholder {zfactor} names nothing"),
    "no-output": ("""\
        job_types:
          - name: shade
            version: "1"
            command: [gdaldem, hillshade, "{input}"]
        """, "job type shade: command: the command must name {output}"),
    "program": ("""\
        job_types:
          - name: shade
            version: "1"
            command: [no-such-tool, "{input}", "{output}"]
        """, "types.yaml:4: job type shade: command.0: no-such-tool is not a program on PATH"),
    "escaped-output": ("""\
        job_types:
          - name: shade
            version: "1"
            command: [gdaldem, hillshade, "{input}", "{{output}}"]
        """, "job type shade: command: the command must name {output}"),
    "relative-program": ("""\
        job_types:
          - name: shade
            version: "1"
            command: [./tools/shade, "{input}", "{output}"]
        """, "types.yaml:4: job type shade: command.0: ./tools/shade ("),
    "duplicate": ("""\
        job_types:
          - name: slope
            version: "1"
            command: [gdaldem, slope, "{input}", "{output}"]
        """, "types.yaml:2: job type slope: name: slope is already a job type"),
    "open-string": ("""\
        job_types:
          - name: shade
            version: "1"
            params:
              - {name: extra, type: string}
            command: [gdaldem, hillshade, "{input}", "{output}", "{extra}"]
        """, "types.yaml:5: job type shade: params.0: a string parameter needs choices or a pattern"),
    "pattern-only-anchored": ("""\
        job_types:
          - name: shade
            version: "1"
            params:
              - {name: extra, type: string, pattern: "a)|(b", default: a}
            command: [gdaldem, hillshade, "{input}", "{output}", "{extra}"]
        """, "types.yaml:5: job type shade: params.0: the pattern is not a regular expression"),
    "default-out-of-bounds": ("""\
        job_types:
          - name: shade
            version: "1"
            params:
              - {name: z, type: number, minimum: 0, default: -1}
            command: [gdaldem, hillshade, "{input}", "{output}", -z, "{z}"]
        """, "types.yaml:5: job type shade: params.0: the default -1 must be at least 0"),
    "duplicate-key": ("""\
        job_types:
          - name: shade
            version: "1"
            version: "2"
            command: [gdaldem, hillshade, "{input}", "{output}"]
        """, "types.yaml:4: is not YAML: the key 'version' appears twice"),
    "alias": ("""\
        job_types:
          - &one {name: shade, version: "1", command: [gdaldem, hillshade, "{input}", "{output}"]}
          - *one
        """, "types.yaml:3: is not YAML: aliases (*name) are not allowed"),
    "optional-without-default": ("""\
        job_types:
          - name: shade
            version: "1"
            params:
              - {name: z, type: number, required: false}
            command: [gdaldem, hillshade, "{input}", "{output}", -z, "{z}"]
        """, "params.0: a parameter that is not required needs a default"),
    "time-limit": ("""\
        job_types:
          - name: shade
            version: "1"
            time_limit: 86000
            command: [gdaldem, hillshade, "{input}", "{output}"]
        """, "types.yaml:4: job type shade: time_limit: at most"),
    "nodata": ("""\
        job_types:
          - name: shade
            version: "1"
            output: {data_type: Byte, nodata: -9999}
            command: [gdaldem, hillshade, "{input}", "{output}"]
        """, "output.nodata: -9999 is not a value of Byte"),
    "bad-name": ("""\
        job_types:
          - name: Shade Me
            version: "1"
            command: [gdaldem, hillshade, "{input}", "{output}"]
        """, "types.yaml:2: job type Shade Me: name: 'Shade Me' is not a job type name"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_job_type_file_names_file_line_and_problem_and_loads_nothing(tmp_path, case):
    text, expected = BAD[case]
    path = write_yaml(tmp_path, text)
    with pytest.raises(DeclarationError) as refused:
        load_files([EXAMPLE, path], taken=JOB_TYPES, path_variable=PATH, max_time_limit=750)
    assert any(expected in problem for problem in refused.value.problems), refused.value.problems
    with pytest.raises(CommandError, match="job type file"):
        call_command("check_job_types", str(path))


@pytest.mark.parametrize("command", [
    ["manage.py", "qcluster"], ["manage.py", "runserver", "127.0.0.1:0"], ["manage.py", "check"],
    ["-m", "gunicorn", "jobsite.wsgi", "--bind", "127.0.0.1:0", "--workers", "1"],
    ["-m", "uvicorn", "jobsite.asgi:application", "--port", "0"]], ids=lambda c: c[1])
def test_a_bad_file_stops_every_process_at_start_with_the_message_not_a_traceback(tmp_path, command):
    path = write_yaml(tmp_path, BAD["placeholder"][0])
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "JOBSITE_JOB_TYPES_FILE": str(path)}
    done = subprocess.run([sys.executable, *command], cwd=BASE_DIR, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    assert "the placeholder {zfactor} names nothing" in done.stderr and "Traceback" not in done.stderr


ECHO = """\
    job_types:
      - name: say
        version: "1"
        params:
          - {name: label, type: string, pattern: "(?s).*", default: x}
          - {name: word, type: string, pattern: "[A-Za-z]+", default: x}
          - {name: mode, type: string, choices: [a, b], default: a}
          - {name: size, type: number, default: 1.5}
        command: [PYTHON, -c, "import sys; sys.stderr.write(repr([a.encode().hex() for a in sys.argv[1:]])); sys.exit(3)",
                  "{input}", "{output}", "{label}", "{word}", "{mode}", "{size}"]
    """


@pytest.mark.parametrize("attack", ["; rm -rf /", "$(touch /tmp/pwned)", "x --output=/etc/x", "`id` | cat",
                                    "{output}"])
def test_a_hostile_parameter_reaches_the_tool_as_one_literal_argument(index, owner, media, monkeypatch, tmp_path,
                                                                      attack):
    declare(monkeypatch, write_yaml(tmp_path, ECHO.replace("PYTHON", sys.executable)))
    job = run(job_submit(owner=owner, job_type="say", tile_ids=index.ids[:1], params={"label": attack}))
    assert job.status == JobStatus.FAILED
    tile = job.tiles.get()
    assert "exited with status 3" in tile.error
    # The tool's own arguments, hex-encoded (the service takes paths out of what it reports).
    argv = [bytes.fromhex(part).decode() for part in ast.literal_eval(tile.error[tile.error.index("["):])]
    assert argv[2:] == [attack, "x", "a", "1.5"] and len(argv) == 6
    assert not Path("/tmp/pwned").exists()


@pytest.mark.parametrize("params,field", [({"word": "a b"}, "word"), ({"word": "--output=/etc/x"}, "word"),
                                          ({"label": "--output=/etc/x"}, "label"), ({"label": "a\x00b"}, "label"),
                                          ({"label": "a\nb"}, "label"), ({"label": "a\n"}, "label"),
                                          ({"label": "x" * 300}, "label"),
                                          ({"mode": "a;b"}, "mode"), ({"size": "1; id"}, "size")])
def test_a_value_outside_its_pattern_or_choices_is_refused_at_submit(index, owner, monkeypatch, tmp_path,
                                                                     params, field):
    declare(monkeypatch, write_yaml(tmp_path, ECHO.replace("PYTHON", sys.executable)))
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, job_type="say", tile_ids=index.ids[:1], params=params)
    assert field in refused.value.errors["params"]
    assert not Job.objects.exists()


def one_tile(tmp_path):
    from jobs.raster.io import crs_wkt_from_epsg, write_raster

    path = tmp_path / "tile.tif"
    write_raster(path, np.arange(100, dtype=np.float32).reshape(10, 10), (0, 1, 0, 10, 0, -1), crs_wkt_from_epsg(EPSG))
    return GridTile(str(path), 0, 0, 10, 10), IndexGrid(10, 10, crs_wkt_from_epsg(EPSG), 10, 10)


def run_tool(tmp_path, argv, progress=None, time_limit=30.0):
    tile, grid = one_tile(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    tool = command.Tool(argv=tuple(argv), time_limit=time_limit, path=PATH, scratch=str(scratch))
    return command.run_on_tile(tile=tile, neighbours=[], grid=grid, halo=0, band=1, tool=tool, values={},
                               output_type="Float32", output_nodata=NODATA, out_path=tmp_path / "out.tif",
                               progress=progress)


SLEEPER = ("import os, subprocess, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); "
           "child = subprocess.Popen(['sleep', '60']); open(sys.argv[1] + '.child', 'w').write(str(child.pid)); "
           "time.sleep(60)")


def gone(pid, within=1.0):
    """Whether the process has ended (or is a zombie) within `within` seconds: a SIGKILL lands
    asynchronously."""
    deadline = time.monotonic() + within
    while True:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True
        except FileNotFoundError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def cancel_once_started(pids, asked):
    """A progress callback that cancels once the SLEEPER has started its child, noting when."""
    def progress(fraction):
        if Path(f"{pids}.child").exists():
            asked.append(time.monotonic())
            return False
        return True
    return progress


def test_cancel_ends_the_tool_and_what_it_started_within_a_second(tmp_path):
    pids, asked = tmp_path / "pid", []
    child = Path(f"{pids}.child")
    with pytest.raises(Cancelled):
        run_tool(tmp_path, [sys.executable, "-c", SLEEPER, str(pids), "{input}", "{output}"],
                 cancel_once_started(pids, asked))
    assert time.monotonic() - asked[0] < 1.5
    assert gone(int(pids.read_text())) and gone(int(child.read_text()))
    assert not (tmp_path / "out.tif").exists() and not list((tmp_path / "scratch").iterdir())


def test_cancel_stops_a_tool_running_over_the_mosaic(index, tmp_path):
    pids = tmp_path / "pid"
    child = Path(f"{pids}.child")
    tool = command.Tool(argv=(sys.executable, "-c", SLEEPER, str(pids), "{input}", "{output}"), time_limit=30,
                        path=PATH, scratch=str(tmp_path))
    asked = []
    with pytest.raises(Cancelled):
        command.run_on_raster(tile_paths=sorted(index.folder.glob("dem_*.tif")), tool=tool, values={},
                              output_type="Float32", output_nodata=NODATA, out_path=tmp_path / "out.tif",
                              crs_wkt=crs_wkt_from_epsg(EPSG),
                              progress=cancel_once_started(pids, asked))
    assert time.monotonic() - asked[0] < 1.5
    assert gone(int(pids.read_text())) and gone(int(child.read_text()))
    assert not (tmp_path / "out.tif").exists() and not list(tmp_path.glob("jobsite-tool-*"))


def test_a_merge_is_told_to_stop_once_its_job_is_canceled(index, owner):
    from jobs.services.control import job_cancel
    from jobs.services.finish import MergeWatch

    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1])
    Job.objects.filter(pk=job.pk).update(status=JobStatus.MERGING)
    watch = MergeWatch(Job.objects.get(pk=job.pk), interval=0)
    assert watch(0.1)
    Job.objects.filter(pk=job.pk).update(merge_started=timezone.now())  # merge_again: another task merges now
    assert not watch(0.2)
    assert MergeWatch(Job.objects.get(pk=job.pk), interval=0)(0.1)
    job_cancel(job=Job.objects.get(pk=job.pk), by="owner")
    assert not MergeWatch(Job.objects.get(pk=job.pk), interval=0)(0.2)


def test_the_time_limit_fails_the_tile_naming_it(tmp_path):
    with pytest.raises(RasterError, match="ran longer than its time limit of 0.5 s"):
        run_tool(tmp_path, [sys.executable, "-c", SLEEPER, str(tmp_path / "pid"), "{input}", "{output}"],
                 time_limit=0.5)
    assert gone(int((tmp_path / "pid").read_text())) and gone(int((tmp_path / "pid.child").read_text()))


def test_a_tool_that_fails_or_writes_nothing_or_the_wrong_size_is_a_clear_failure(tmp_path):
    with pytest.raises(RasterError, match="exited with status 2: no such band"):
        run_tool(tmp_path, [sys.executable, "-c", "import sys; sys.stderr.write('no such band'); sys.exit(2)",
                            "{input}", "{output}"])
    with pytest.raises(RasterError, match=r"wrote no output \(expected out.tif\)"):
        run_tool(tmp_path, [sys.executable, "-c", "pass", "{input}", "{output}"])
    with pytest.raises(RasterError, match="wrote 5 x 5 pixels; the window it was given is 10 x 10"):
        run_tool(tmp_path, ["gdal_translate", "-q", "-srcwin", "0", "0", "5", "5", "{input}", "{output}"])
    assert run_tool(tmp_path, ["gdal_translate", "-q", "{input}", "{output}"]) > 0


def test_a_declared_type_runs_end_to_end_on_a_real_cluster(index, owner, client_for, start_cluster, monkeypatch):
    from .conftest import wait_until_final

    declare(monkeypatch, EXAMPLE)
    start_cluster(JOBSITE_JOB_TYPES_FILE=str(EXAMPLE))
    api = client_for(owner)
    assert api.get("/api/v1/job-types/tri/").json()["source"].startswith("file ")
    created = api.post("/api/v1/jobs/", {"type": "tri", "tile_ids": index.ids, "params": {"algorithm": "Wilson"}},
                       format="json")
    assert created.status_code == 201, created.json()
    job = wait_until_final(created.json()["id"], timeout=60)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert np.array_equal(merged_pixels(job), whole_gdaldem(index.whole, "TRI", "-alg", "Wilson"))


def test_resuming_a_job_whose_type_was_defined_anew_says_so_and_reruns_every_tile(index, owner, monkeypatch):
    import dataclasses

    from jobs.jobschema import Param
    from jobs.models import JobLog
    from jobs.services.control import job_cancel, job_resume

    declare(monkeypatch, EXAMPLE)
    job = job_submit(owner=owner, job_type="tpi", tile_ids=index.ids[:2])
    assert job.type_version == "1"
    job_cancel(job=job, by="owner")
    redefined = dataclasses.replace(JOB_TYPES["tpi"], version="2", params=(
        *JOB_TYPES["tpi"].params, Param("scale", "number", 2.0, "added in version 2")))
    monkeypatch.setitem(JOB_TYPES, "tpi", redefined)
    resumed, to_run = job_resume(job=Job.objects.get(pk=job.pk))
    assert to_run == 2 and resumed.type_version == "2" and resumed.params["scale"] == 2.0
    assert JobLog.objects.filter(job=job, message__contains="tpi is defined anew since it ran (version 1 -> 2), "
                                                             "every tile runs again").exists()


def test_the_admin_shows_where_a_jobs_type_comes_from(index, owner, admin_client, monkeypatch):
    declare(monkeypatch, EXAMPLE)
    job = job_submit(owner=owner, job_type="tri", tile_ids=index.ids[:1])
    page = admin_client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert f"file {EXAMPLE}" in page


def test_a_python_job_type_registered_by_dotted_path_runs_like_a_built_in(index, owner, media, monkeypatch):
    from jobs.declared import load_python

    for name, kind in load_python(["tests.python_job_type.OFFSET"], taken=JOB_TYPES).items():
        monkeypatch.setitem(JOB_TYPES, name, kind)
    assert JOB_TYPES["offset"].schema()["source"] == "python tests.python_job_type.OFFSET"
    job = run(job_submit(owner=owner, job_type="offset", tile_ids=index.ids, params={"amount": 2.5}))
    whole = gdal.Open(str(index.whole)).ReadAsArray()
    expected = np.where(whole != NODATA, whole + 2.5, NODATA).astype(np.float32)
    assert job.status == JobStatus.SUCCEEDED and job.type_version == "2"
    assert np.array_equal(merged_pixels(job), expected)


@pytest.mark.parametrize("dotted,problem", [
    ("tests.python_job_type.NOT_A_TYPE", "is a str, not a jobs.jobschema.JobType"),
    ("tests.no_such_module.OFFSET", "cannot be imported"),
    ("tests.python_job_type.MISSING", "cannot be imported"),
])
def test_a_bad_python_job_type_path_is_refused_naming_it(dotted, problem):
    from jobs.declared import load_python

    with pytest.raises(DeclarationError, match=problem):
        load_python([dotted], taken=JOB_TYPES)
    with pytest.raises(DeclarationError, match="offset is already a job type"):
        load_python(["tests.python_job_type.OFFSET"], taken={"offset"} | set(JOB_TYPES))


def test_a_pattern_that_backtracks_badly_is_given_up_on_not_waited_for():
    from jobs.jobschema import Param

    started = time.monotonic()
    with pytest.raises(ValueError, match="takes too long to check against the pattern"):
        Param("name", "string", "a", "", pattern="(a|aa)+$").clean("a" * 60 + "b")
    assert time.monotonic() - started < 1


def test_a_tools_output_becomes_the_declared_type_with_nodata_for_what_it_cannot_hold():
    pixels = np.array([[1.4, 300.0, np.nan, -1.0]], dtype=np.float32)
    assert command._as_type(pixels, "Byte", 255, None).tolist() == [[1, 255, 255, 255]]
    assert command._as_type(pixels, "Float32", -9999.0, float("nan")).tolist()[0][2] == -9999.0
    assert command._as_type(pixels, "Int16", -32768, -1.0).tolist() == [[1, 300, -32768, -32768]]


def test_only_the_tail_of_a_tools_output_is_read_and_the_tool_gets_no_network(tmp_path):
    script = ("import os, sys; sys.stderr.write('x' * 5_000_000 + ' ' + os.environ['GDAL_HTTP_PROXY'] + ' ' "
              "+ os.environ['OMP_NUM_THREADS']); sys.exit(1)")
    with pytest.raises(RasterError) as failed:
        run_tool(tmp_path, [sys.executable, "-c", script, "{input}", "{output}"])
    message = str(failed.value)
    assert len(message) < 3000 and message.endswith("jobsite-network-disabled://gdal 1")
