"""The new-job form accepts its own defaults, for every job type and every choice of its choice
parameters; parameters the chosen values leave unused are neither errors nor stored."""

import shutil
from html.parser import HTMLParser

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datafiles.services import datafile_store
from jobs import paramschema
from jobs.jobtypes import JOB_TYPES
from jobs.models import Job

from .datafile_samples import COLOR_TABLE, polygons_bytes

INPUT_FILES = {"text": "ramp.txt", "vector": "zones.geojson"}


class FormValues(HTMLParser):
    """What a browser without JavaScript sends for the new-job form as rendered: every enabled
    field with its value, a select's selected option (or its first), checked checkboxes."""

    def __init__(self):
        super().__init__()
        self.values, self.choices, self.unused_with = {}, {}, {}
        self._in_form = False
        self._select = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and "job-form" in (attrs.get("class") or ""):
            self._in_form = True
        if not self._in_form:
            return
        if "data-unused-with" in attrs:
            self.unused_with[attrs["name"]] = attrs["data-unused-with"]
        # A browser sends neither a disabled control nor one without a name (the map's layer switches).
        if tag == "input" and "name" in attrs and "disabled" not in attrs and attrs.get("type") not in ("submit", "button"):
            if attrs.get("type") == "checkbox":
                if "checked" in attrs:
                    self.values[attrs["name"]] = attrs.get("value", "on")
            else:
                self.values[attrs["name"]] = attrs.get("value", "")
        elif tag == "select" and "disabled" not in attrs:
            self._select = attrs["name"]
            self.choices[self._select] = []
        elif tag == "option" and self._select:
            self.choices[self._select].append(attrs["value"])
            if "selected" in attrs or self._select not in self.values:
                self.values[self._select] = attrs["value"]

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "form":
            self._in_form = False


def rendered_form(client, type_name):
    response = client.get(f"/jobs/new/?type={type_name}")
    assert response.status_code == 200
    parser = FormValues()
    parser.feed(response.content.decode())
    return parser


def choice_cases():
    """(type, {choice parameter: one of its choices}): every choice of every choice parameter, and
    each type once with its defaults alone."""
    for kind in JOB_TYPES.values():
        yield pytest.param(kind.name, {}, id=f"{kind.name}-defaults")
        for param in kind.params:
            for choice in param.choices:
                yield pytest.param(kind.name, {param.name: choice}, id=f"{kind.name}-{param.name}-{choice}")


@pytest.fixture
def logged_in(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def input_files(owner, media, tmp_path):
    datafile_store(owner=owner, upload=SimpleUploadedFile(INPUT_FILES["text"], COLOR_TABLE.encode()))
    datafile_store(owner=owner, upload=SimpleUploadedFile(INPUT_FILES["vector"], polygons_bytes(tmp_path)))


# What the form cannot default: the required parameters.
REQUIRED = {"calc": {"param_expression": "dem * 2", "param_inputs": '{"dem": {"collection": "default"}}'},
            "reproject": {"param_dst_crs": "3857", "param_resolution": "10"}, "echo": {"param_message": "hello"}}


@pytest.mark.parametrize("type_name,choices", list(choice_cases()))
def test_it_accepts_its_own_defaults_for_every_type_and_choice(index, owner, logged_in, input_files, type_name,
                                                               choices):
    kind = JOB_TYPES[type_name]
    form = rendered_form(logged_in, type_name)
    data = {**form.values, "tile_ids": str(index.ids[0])} if kind.uses_tiles else dict(form.values)
    data.update({f"param_{name}": choice for name, choice in choices.items()})
    data.update({f"input_{i.name}": INPUT_FILES[i.kind] for i in kind.inputs})
    data.update(REQUIRED.get(type_name, {}))

    response = logged_in.post("/jobs/new/", data)

    assert response.status_code == 302, response.content.decode()
    job = Job.objects.get(owner=owner)
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert job.type == type_name and job.tiles_total == (1 if kind.uses_tiles else 0)
    schema = kind.params_schema()
    expected = set(schema["properties"]) - paramschema.unused(schema, {**{p.name: p.default for p in kind.params},
                                                                       **choices})
    assert set(job.params) == expected
    for name, choice in choices.items():
        assert job.params[name] == choice


@pytest.mark.parametrize("mode,unused", [("igor", "altitude"), ("multidirectional", "azimuth")])
def test_a_value_of_an_unused_parameter_is_ignored_not_an_error(index, owner, logged_in, mode, unused):
    """Without JavaScript the browser sends the hidden field, even a value out of its bounds."""
    data = {**rendered_form(logged_in, "hillshade").values, "tile_ids": str(index.ids[0]), "param_mode": mode,
            f"param_{unused}": "1000"}
    response = logged_in.post("/jobs/new/", data)
    assert response.status_code == 302, response.content.decode()
    assert unused not in Job.objects.get(owner=owner).params


def test_a_refused_form_shows_the_unused_parameter_disabled(index, owner, logged_in):
    data = {**rendered_form(logged_in, "hillshade").values, "tile_ids": "1", "param_mode": "igor"}
    html = logged_in.post("/jobs/new/", data).content.decode()
    assert "unknown tile ids: 1" in html and not Job.objects.exists()
    start = html.index('name="param_altitude"')
    tag = html[html.rindex("<", 0, start):html.index(">", start)]
    assert " disabled" in tag


def test_the_form_says_which_fields_each_mode_leaves_unused_and_loads_its_script(db, logged_in):
    form = rendered_form(logged_in, "hillshade")
    assert form.unused_with == {"param_azimuth": '{"param_mode": ["multidirectional"]}',
                                "param_altitude": '{"param_mode": ["igor"]}'}
    html = logged_in.get("/jobs/new/?type=hillshade").content.decode()
    assert '<script src="/static/js/job_form.js" defer></script>' in html
    assert "<script>" not in html  # the Content-Security-Policy allows no inline script


@pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs chromium-driver")
def test_the_script_hides_and_disables_what_the_chosen_mode_leaves_unused(transactional_db, index, owner,
                                                                         live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from .chromium import headless_chromium
    from .test_browser import log_in

    with headless_chromium(console=True) as browser:
        log_in(browser, live_server)
        browser.get(f"{live_server.url}/jobs/new/?type=hillshade")
        altitude = browser.find_element(By.NAME, "param_altitude")
        azimuth = browser.find_element(By.NAME, "param_azimuth")
        mode = Select(browser.find_element(By.NAME, "param_mode"))
        assert altitude.is_displayed() and altitude.is_enabled() and azimuth.is_enabled()

        mode.select_by_value("igor")
        assert not altitude.is_displayed() and not altitude.is_enabled()
        assert azimuth.is_displayed() and azimuth.is_enabled()
        mode.select_by_value("multidirectional")
        assert altitude.is_displayed() and altitude.is_enabled() and not azimuth.is_enabled()

        mode.select_by_value("igor")
        browser.find_element(By.NAME, "tile_ids").send_keys(str(index.ids[0]))
        browser.find_element(By.CSS_SELECTOR, "form.job-form button[type=submit]:not(.switch-type)").click()
        WebDriverWait(browser, 10).until(lambda d: d.title.startswith("Job "))
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and e["source"] != "network"] == []
    job = Job.objects.get(owner=owner)
    assert job.params["mode"] == "igor" and "altitude" not in job.params
