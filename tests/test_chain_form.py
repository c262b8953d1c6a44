"""The dashboard's new-job form builds a chain step by step: it posts itself back to add a step,
remove the last one or show the fields of a step's new type, keeping what was entered, and
submits the chain; the service's refusals stand beside the fields of their step."""

import html
import json
import re
import shutil

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datafiles.services import datafile_store
from jobs.models import Job

from .datafile_samples import COLOR_TABLE
from .test_job_form import FormValues


@pytest.fixture
def logged_in(client, owner):
    client.force_login(owner)
    return client


def form_of(response):
    assert response.status_code == 200, response.status_code
    parser = FormValues()
    parser.feed(response.content.decode())
    return parser


def press(client, form, button, **changes):
    """Post the form as a browser without JavaScript would, with `button` pressed."""
    return client.post("/jobs/new/", {**form.values, **changes, button: "1"})


def test_a_chain_is_built_step_by_step_and_submitted(index, owner, media, logged_in):
    datafile_store(owner=owner, upload=SimpleUploadedFile("ramp.txt", COLOR_TABLE.encode()))
    form = form_of(logged_in.get("/jobs/new/?type=chain"))
    assert form.values["type"] == "chain" and form.values["steps"] == "1" and form.values["step0_type"] == "hillshade"
    assert "calc" in form.choices["step0_type"] and "zonal-statistics" not in form.choices["step0_type"]
    assert "step0_param_z_factor" in form.values and "step0_param_band" in form.values

    form = form_of(press(logged_in, form, "add_step", step0_type="slope", tile_ids=", ".join(map(str, index.ids))))
    assert form.values["steps"] == "2" and form.values["step0_type"] == "slope" and form.values["step1_type"] == "slope"
    assert "color-relief" in form.choices["step1_type"] and "color-relief" not in form.choices["step0_type"]
    assert "step1_param_band" not in form.values  # it reads band 1, the result of the step before

    form = form_of(press(logged_in, form, "add_step", step0_param_units="percent"))
    assert form.values["steps"] == "3" and form.values["step0_param_units"] == "percent"
    form = form_of(press(logged_in, form, "remove_step"))
    assert form.values["steps"] == "2" and "step2_type" not in form.values

    form = form_of(press(logged_in, form, "switch_type", step1_type="color-relief"))
    assert form.choices["step1_input_color_table"] == ["", "ramp.txt"] and "step1_param_matching" in form.values
    assert form.values["tile_ids"] == ", ".join(map(str, index.ids)) and form.values["step0_param_units"] == "percent"

    response = logged_in.post("/jobs/new/", {**form.values, "step1_input_color_table": "ramp.txt",
                                             "step1_param_alpha": "on"})
    job = Job.objects.get(owner=owner)
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert job.type == "chain" and job.tiles_total == len(index.ids)
    assert [(step["type"], step["params"].get("units"), step["params"].get("alpha")) for step in job.params["steps"]] == [
        ("slope", "percent", None), ("color-relief", None, True)]
    assert job.inputs.get().name == "steps[1].color_table"


def test_a_calc_step_keeps_its_expression_inputs_and_output_type_as_the_steps_change(index, owner, media, logged_in):
    form = form_of(logged_in.get("/jobs/new/?type=chain"))
    form = form_of(press(logged_in, form, "switch_type", step0_type="slope", tile_ids=str(index.ids[0])))
    form = form_of(press(logged_in, form, "add_step"))
    form = form_of(press(logged_in, form, "switch_type", step1_type="calc"))
    inputs = '{"s": {"step": 0}, "dem": {"collection": "default"}}'
    response = press(logged_in, form, "add_step", step1_param_expression="where(dem > 100, s, 0)",
                     step1_param_inputs=inputs, step1_param_output_type="Float64")
    form = form_of(response)
    assert form.values["step1_param_output_type"] == "Float64"
    shown = html.unescape(re.search(r'<textarea name="step1_param_inputs"[^>]*>\s*(.*?)</textarea>',
                                    response.content.decode(), re.DOTALL).group(1))
    assert json.loads(shown) == json.loads(inputs)  # as typed, not encoded again
    form = form_of(press(logged_in, form, "remove_step", step1_param_inputs=shown))
    response = logged_in.post("/jobs/new/", {**form.values, "step1_param_inputs": shown})
    assert response.status_code == 302, response.content.decode()[-3000:]
    calc = Job.objects.get(owner=owner).params["steps"][1]
    assert calc["type"] == "calc" and calc["params"]["output_type"] == "Float64"
    assert calc["params"]["inputs"] == {"s": {"step": 0}, "dem": {"collection": "default", "band": 1}}


@pytest.mark.parametrize("tampered", [
    {"steps": "abc"}, {"steps": "999", "add_step": "1"}, {"step0_type": "zonal-statistics"},
    {"step0_type": "calc", "estimate": "1", "add_step": "1"}, {"step0_type": "calc", "estimate": "1"},
    {"steps": "2", "step1_type": "nonsense", "remove_step": "1"},
])
def test_a_tampered_form_is_shown_again_or_refused_never_a_server_error(index, owner, media, logged_in, tampered):
    response = logged_in.post("/jobs/new/", {"type": "chain", "tile_ids": str(index.ids[0]), **tampered})
    assert response.status_code in (200, 400), response.status_code
    assert not Job.objects.exists()


def test_refusals_stand_beside_the_fields_of_their_step_and_nothing_is_submitted(index, owner, media, logged_in):
    datafile_store(owner=owner, upload=SimpleUploadedFile("bad.txt", b"0 0 0 0\n100 notacolour\n"))
    form = form_of(logged_in.get("/jobs/new/?type=chain"))
    form = form_of(press(logged_in, form, "add_step", tile_ids=str(index.ids[0])))
    form = form_of(press(logged_in, form, "switch_type", step1_type="color-relief"))
    html = logged_in.post("/jobs/new/", {**form.values, "step1_input_color_table": "ramp.txt",
                                         "step0_param_z_factor": "0"}).content.decode()
    assert not Job.objects.exists()
    step_one = html[html.index("<legend>Step 1</legend>"):html.index("<legend>Step 2</legend>")]
    assert re.search(r'name="step0_param_z_factor".*class="error" role="alert">must be greater than 0', step_one,
                     re.DOTALL), step_one

    html = logged_in.post("/jobs/new/", {**form.values, "step1_input_color_table": "bad.txt"}).content.decode()
    assert not Job.objects.exists()
    step_two = html[html.index("<legend>Step 2</legend>"):]
    assert "bad.txt is not a colour table that GDAL can read: Unknown color : notacolour" in step_two


def test_the_estimate_of_a_chain_counts_its_steps(index, owner, media, logged_in):
    form = form_of(logged_in.get("/jobs/new/?type=chain"))
    form = form_of(press(logged_in, form, "add_step", tile_ids=str(index.ids[0])))
    answer = logged_in.post("/jobs/new/", {**form.values, "estimate": "1"}, HTTP_ACCEPT="application/json")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["tiles"] == 1 and answer.json()["pixels"] == 2 * 64 * 64


@pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs chromium-driver")
def test_in_a_browser_choosing_a_steps_type_shows_its_fields_at_once(transactional_db, index, owner, media,
                                                                      live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from .chromium import headless_chromium
    from .test_browser import log_in

    datafile_store(owner=owner, upload=SimpleUploadedFile("ramp.txt", COLOR_TABLE.encode()))
    with headless_chromium(console=True) as browser:
        log_in(browser, live_server)
        browser.get(f"{live_server.url}/jobs/new/?type=hillshade")
        Select(browser.find_element(By.NAME, "type")).select_by_value("chain")
        WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.NAME, "step0_type"))
        assert not browser.find_element(By.CSS_SELECTOR, ".switch-step").is_displayed()  # the script changes steps
        browser.find_element(By.NAME, "tile_ids").send_keys(", ".join(map(str, index.ids[:2])))
        browser.find_element(By.CSS_SELECTOR, "button.add-step").click()
        WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.NAME, "step1_type"))
        Select(browser.find_element(By.NAME, "step1_type")).select_by_value("color-relief")
        WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.NAME, "step1_input_color_table"))
        Select(browser.find_element(By.NAME, "step1_input_color_table")).select_by_value("ramp.txt")
        assert browser.find_element(By.NAME, "tile_ids").get_attribute("value") == ", ".join(map(str, index.ids[:2]))
        browser.find_element(By.CSS_SELECTOR, "p.actions button[type=submit]:not(.estimate)").click()
        WebDriverWait(browser, 10).until(lambda d: d.title.startswith("Job "))
        assert "color-relief" in browser.find_element(By.CSS_SELECTOR, "ol.steps").text
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and e["source"] != "network"] == []
    job = Job.objects.get(owner=owner)
    assert [step["type"] for step in job.params["steps"]] == ["hillshade", "color-relief"]
