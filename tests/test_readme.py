"""The README against the running API: the keys it documents for each answer, its JSON examples,
the job types and settings it lists, and Markdown tables that render as tables."""

import json
import re
import shlex

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.services.control import job_cancel
from jobs.services.submit import job_submit
from jobs.jobtypes import JOB_TYPES

from .conftest import BASE_DIR
from .datafile_samples import COLOR_TABLE
from .test_execution import run

README = (BASE_DIR / "README.md").read_text()


def section(title):
    """The text of the README's `## title` section."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end >= 0 else None]


def tables(text):
    """Each run of consecutive table lines, as lists of lines."""
    runs, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            runs.append(current)
            current = []
    return runs


def cells(line):
    """The cells of a table row; `\\|` inside a cell is not a separator."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def code_spans(text):
    return re.findall(r"`([^`]+)`", text)


def rows(title):
    """{first cell: the other cells} of the tables of a section."""
    return {cells(line)[0]: cells(line)[1:] for table in tables(section(title)) for line in table[2:]}


def parse_keys(spec):
    """A documented answer's keys: `a, b [{c, d}], e {f}` is {"a": None, "b": [{"c": None, "d": None}],
    "e": {"f": None}}; `[{...}]` alone is a list of such objects."""
    spec = spec.strip()
    if spec.startswith("[{") and spec.endswith("}]"):
        return [parse_keys(spec[2:-2])]
    keys, end = _keys(spec, 0)
    assert end == len(spec), f"cannot read the keys {spec!r} past {spec[end:]!r}"
    return keys


def _keys(text, pos):
    keys = {}
    while True:
        name = re.compile(r"\s*(\w+)\s*").match(text, pos)
        assert name, f"no key name at {text[pos:]!r}"
        pos, value = name.end(), None
        if text.startswith("[{", pos):
            inner, pos = _keys(text, pos + 2)
            assert text.startswith("}]", pos), text[pos:]
            pos, value = pos + 2, [inner]
        elif text.startswith("{", pos):
            value, pos = _keys(text, pos + 1)
            assert text.startswith("}", pos), text[pos:]
            pos += 1
        keys[name.group(1)] = value
        comma = re.compile(r"\s*,\s*").match(text, pos)
        if not comma:
            return keys, pos
        pos = comma.end()


def assert_shape(documented, answer, where, empty=False):
    """`answer` has exactly the documented keys, nested ones too. The items of a list have only
    documented keys and, together, all of them (a parameter has a bound or choices only where it
    needs them); lists nested in them are read as one (the parameters of all job types). Only a
    nested list may be empty (a job without outputs yet)."""
    if isinstance(documented, list):
        assert isinstance(answer, list) and (answer or empty), f"{where}: expected a non-empty list, got {answer!r}"
        if not answer:
            return
        found = set().union(*(item.keys() for item in answer))
        assert found == set(documented[0]), f"{where}: the README says {sorted(documented[0])}, the API {sorted(found)}"
        for key, inner in documented[0].items():
            values = [item[key] for item in answer if item.get(key) is not None]
            if isinstance(inner, list):
                assert_shape(inner, [value for listed in values for value in listed], f"{where} {key}", empty=True)
            elif inner is not None:
                for value in values:
                    assert_shape(inner, value, f"{where} {key}")
        return
    assert isinstance(answer, dict), f"{where}: expected an object, got {answer!r}"
    assert set(answer) == set(documented), f"{where}: the README says {list(documented)}, the API {list(answer)}"
    for key, inner in documented.items():
        if inner is not None and answer[key] is not None:
            assert_shape(inner, answer[key], f"{where} {key}", empty=True)


def documented_keys(request_cell):
    """The keys the REST API table documents for a request: the first code span of its answer with a comma."""
    answer = rows("REST API")[request_cell][0]
    return parse_keys(next(span for span in code_spans(answer) if "," in span))


@pytest.fixture
def site(index, town, owner, media, client_for):
    """A succeeded job with a label, a canceled one, and a data file of each kind that has content."""
    client = client_for(owner)
    job = run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:2], labels=["flood"]))
    assert job.outputs  # so that the keys of an output are compared too
    canceled = job_cancel(job=job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1]))
    upload = client.post("/api/v1/datafiles/", {"file": SimpleUploadedFile("ramp.txt", COLOR_TABLE.encode())})
    assert upload.status_code == 201
    return {"client": client, "job": job.pk, "canceled": canceled.pk, "tile": index.ids[0], "town": town.id}


# Each request of the REST API table whose keys it documents: the URLs it answers and what the keys
# describe there ("object": the answer; "page": each result of a paged list; "list": each item).
DOCUMENTED = {
    "`GET jobs/{id}/`": [("jobs/{job}/", "object"), ("jobs/{canceled}/", "object"), ("jobs/", "page")],
    "`GET jobs/{id}/tiles/?status=failed`": [("jobs/{job}/tiles/", "page")],
    "`GET jobs/{id}/logs/?after=<log id>`": [("jobs/{job}/logs/", "object")],
    "`GET jobs/{id}/outputs/` and `GET, HEAD jobs/{id}/outputs/{name}`": [("jobs/{job}/outputs/", "object")],
    "`GET tiles/`, `GET tiles/{number}/?collection=dem1m`": [("tiles/", "page"), ("tiles/{tile}/", "object")],
    "`GET towns/`, `GET towns/{id}/`": [("towns/", "page"), ("towns/{town}/", "object")],
    "`GET job-types/`, `GET job-types/{name}/`": [("job-types/", "list"), ("job-types/hillshade/", "object")],
    "`GET labels/`": [("labels/", "page")],
    "`GET datafiles/`, `GET datafiles/{name}/`": [("datafiles/", "page"), ("datafiles/ramp.txt/", "object")],
    "`GET storage/`": [("storage/", "object")],
}


@pytest.mark.parametrize("request_cell", DOCUMENTED)
def test_the_keys_the_readme_documents_are_the_keys_the_api_answers(site, request_cell):
    documented = documented_keys(request_cell)
    for url, what in DOCUMENTED[request_cell]:
        url = "/api/v1/" + url.format(**site)
        response = site["client"].get(url)
        assert response.status_code == 200, (url, response.content[:300])
        answer = response.json()
        if what == "page":
            answer = answer["results"]
        assert_shape([documented] if what in ("page", "list") else documented, answer, f"{request_cell} at {url}")


def test_the_lists_the_readme_says_are_paged_are_and_the_others_are_arrays(site):
    paging = re.search(r"The lists (.*?) are paged.*?answer `([^`]+)`\..*?;(.*?)answer a plain array", README, re.S)
    assert paging, "the README's paragraph on paging"
    paged, envelope, arrays = code_spans(paging.group(1)), parse_keys(paging.group(2)), code_spans(paging.group(3))
    assert "jobs/" in paged and "job-types/" in arrays
    for path in paged:
        answer = site["client"].get("/api/v1/" + path.replace("{id}", str(site["job"]))).json()
        assert set(answer) == set(envelope), (path, sorted(answer))
    for path in arrays:
        assert isinstance(site["client"].get("/api/v1/" + path.replace("{id}", str(site["job"]))).json(), list), path


def json_blocks(text):
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]


# The request behind each error example of the README, by the field it names.
ERROR_EXAMPLES = {
    "tile_ids": ("/api/v1/jobs/", {"type": "slope", "tile_ids": [1, 2]}),
    "params": ("/api/v1/jobs/", {"type": "hillshade", "tile_ids": [100], "params": {"azimuth": 400}}),
}


def test_the_error_examples_are_what_the_api_answers(index, owner, client_for):
    examples = json_blocks(section("REST API"))
    assert len(examples) == len(ERROR_EXAMPLES)
    for example in examples:
        url, body = ERROR_EXAMPLES[next(iter(example["errors"]))]
        response = client_for(owner).post(url, body, format="json")
        assert response.status_code == 400 and response.json() == example


def curl_commands():
    """Each curl command of the README's shell examples as its arguments, and the `# {...}` answer
    shown after it (or None)."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("curl "):
                commands.append([shlex.split(line), None])
            elif line.startswith("# {") and commands:
                commands[-1][1] = json.loads(line[2:])
    return commands


def test_the_shell_examples_work(index, town, owner, client_for):
    client = client_for(owner)
    tried, submitted = set(), None
    for arguments, shown in curl_commands():
        url = next(argument for argument in arguments if argument.startswith("http"))
        path = re.sub(r"^https?://[^/]+", "", url)
        data = [arguments[i + 1] for i, argument in enumerate(arguments) if argument == "-d"]
        if path == "/api/v1/auth/token/":
            form = dict(field.split("=", 1) for field in data)
            assert set(form) == {"username", "password"}
            response = client_for().post(path, {"username": "owner", "password": "owner-pass-1"})
            assert response.status_code == 200 and set(response.json()) == set(shown)
        elif path == "/api/v1/jobs/" and data:
            response = client.post(path, json.loads(data[0]), format="json")
            assert response.status_code == 201, response.json()
            submitted = response.json()["id"]
        else:  # reads what the examples before it made: job 1 is the one submitted
            assert client.get(path.replace("/jobs/1/", f"/jobs/{submitted}/")).status_code == 200, path
        tried.add(path)
    assert {"/api/v1/auth/token/", "/api/v1/jobs/"} <= tried


def test_the_job_types_table_lists_every_type_with_its_parameters_and_inputs():
    table = rows("Job types")
    assert {cell.strip("`") for cell in table} == set(JOB_TYPES)
    for name, job_type in JOB_TYPES.items():
        named = set(code_spans(table[f"`{name}`"][0]))
        missing = {param.name for param in job_type.params} - named
        missing |= {job_input.name for job_input in job_type.inputs} - named
        assert not missing, f"the README's row for {name} does not name {sorted(missing)}"


def test_the_job_types_example_is_accepted(index, town, owner, media, client_for):
    client = client_for(owner)
    client.post("/api/v1/datafiles/", {"file": SimpleUploadedFile("ramp.txt", COLOR_TABLE.encode())})
    examples = [json.loads(span) for span in code_spans(section("Job types")) if span.startswith('{"type"')]
    assert examples
    for example in examples:
        response = client.post("/api/v1/jobs/", example, format="json")
        assert response.status_code == 201, response.json()


def test_the_introduction_names_every_job_type():
    introduction = README[README.index("jobsite is a job server"):README.index("\n## ")]
    assert {span for span in code_spans(introduction) if span in JOB_TYPES} == set(JOB_TYPES)


def test_every_setting_read_from_the_environment_is_documented():
    source = (BASE_DIR / "jobsite" / "settings.py").read_text() + (BASE_DIR / "gunicorn.conf.py").read_text()
    read = set(re.findall(r"""(?:envbool|envint|envlist|environ\.get|environ)[(\[]["']([A-Z][A-Z0-9_]+)["']""", source))
    assert {"DEBUG", "TIME_ZONE", "WEB_CONCURRENCY"} <= read
    documented = {name for line in tables(section("Configuration"))[0] for name in code_spans(cells(line)[0])}
    assert not read - documented, f"settings not in the README's Configuration table: {sorted(read - documented)}"


def test_api_times_carry_the_offset_of_time_zone(index, owner, client_for, settings):
    settings.TIME_ZONE = "Asia/Kolkata"  # +05:30 all year
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1])
    assert client_for(owner).get(f"/api/v1/jobs/{job.pk}/").json()["created"].endswith("+05:30")


def test_every_table_is_in_one_piece():
    """A blank line inside a table ends it: the rows after it render as a paragraph of pipes."""
    for table in tables(README):
        where = table[0][:60]
        header = len(table) >= 2 and re.fullmatch(r"\|( *:?-{3,}:? *\|)+", table[1])
        assert header, f"a table without its header: {where}"
        width = len(cells(table[0]))
        for line in table:
            assert len(cells(line)) == width, f"a row of {len(cells(line))} cells in a table of {width}: {line[:80]}"
