"""The dashboard's maps in a real headless Chromium against a live server: a job's tiles and result
rendered from the site's own map tiles, a tile's popup, choosing tiles on the new-job form by
drawing, and a phone-width page."""

import shutil

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from jobs.models import Job, JobStatus, Tile, Town
from jobs.raster.io import crs_wkt_from_epsg
from jobs.services.submit import job_submit

from .chromium import headless_chromium
from .conftest import EPSG, ORIGIN
from .datafile_samples import polygons_bytes
from .test_datafile_maps import raster_bytes, store
from .test_browser import log_in, shot, wait
from .test_execution import run
from .test_map_layers import lonlat

pytestmark = pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs chromium-driver")

# Pixels of the map's canvases that are not transparent, and the map tiles the page asked for.
PAINTED = """
const panel = document.querySelector('[data-map]');
let painted = 0;
for (const canvas of panel.querySelectorAll('.map canvas')) {
  if (!canvas.width || !canvas.height) continue;
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 3; i < pixels.length; i += 16) if (pixels[i] > 0) painted++;
}
return painted;
"""
TILES_ASKED = "return performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.includes(arguments[0]));"


@pytest.fixture
def browser():
    with headless_chromium(console=True) as driver:
        yield driver


def click_at(browser, coordinate_js, *args):
    """Click the map at the pixel of a map coordinate that `coordinate_js` returns."""
    element = browser.find_element(By.CSS_SELECTOR, "[data-map] .map")
    x, y = browser.execute_script(
        "const panel = document.querySelector('[data-map]'); const map = panel.map;"
        f"const pixel = map.getPixelFromCoordinate(({coordinate_js})(map, panel)); return pixel;", *args)
    width, height = element.size["width"], element.size["height"]
    ActionChains(browser).move_to_element_with_offset(element, int(x - width / 2), int(y - height / 2)).click().perform()


def test_the_job_page_shows_its_tiles_and_result_on_a_map(live_server, browser, index, media, owner):
    job = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids))
    assert job.status == JobStatus.SUCCEEDED
    log_in(browser, live_server)
    browser.get(f"{live_server.url}/jobs/{job.pk}/")
    wait(browser, lambda d: d.execute_script("return document.querySelector('[data-map]').dataset.result === 'shown';"))
    wait(browser, lambda d: d.execute_script(PAINTED) > 2000, timeout=30)
    wait(browser, lambda d: d.execute_script(TILES_ASKED, f"/jobs/{job.pk}/outputs/slope.tif/tiles/"))
    wait(browser, lambda d: d.execute_script(TILES_ASKED, "/collections/default/tiles/"))
    legend = browser.find_element(By.CSS_SELECTOR, ".map-legend")
    assert legend.is_displayed() and "viridis" in legend.text
    shot(browser, "job-map")

    # A click on a tile tells its number, status, attempts, the result's value there and its log.
    tile = index.ids[5]
    click_at(browser, "(map, panel) => { const layer = map.getLayers().getArray().find((l) => l.getSource().getFeatureById);"
                      f"return ol.extent.getCenter(layer.getSource().getFeatureById({tile}).getGeometry().getExtent()); }}")
    popup = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".map-popup:not([hidden])"))
    wait(browser, lambda d: "…" not in popup.text)
    text = popup.text
    assert f"tile\n{tile}" in text and "succeeded" in text and "attempts\n1" in text, text
    value = text.split("value\n")[1].split("\n")[0]
    assert float(value) >= 0, text
    assert "log\n" in text
    shot(browser, "job-map-popup")
    problems = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not [p for p in problems if "404" in p or "500" in p or "Error" in p], problems


def test_tiles_are_chosen_by_drawing_and_submitted(live_server, browser, index, media, owner):
    log_in(browser, live_server)
    browser.get(f"{live_server.url}/jobs/new/?type=slope")
    wait(browser, lambda d: d.execute_script(TILES_ASKED, "/collections/default/tiles/"))
    wait(browser, lambda d: d.execute_script(PAINTED) > 2000)
    # A rectangle over the first two columns of the first row of tiles (they are 64 px of 5 m).
    browser.find_element(By.CSS_SELECTOR, "[data-draw=box]").click()
    x0, y0 = ORIGIN
    for x, y in ((x0 + 20, y0 - 20), (x0 + 64 * 5 + 20, y0 - 40)):
        click_at(browser, "(map) => ol.proj.fromLonLat(arguments[0])", lonlat(x, y))
    ids = browser.find_element(By.NAME, "tile_ids")
    wait(browser, lambda d: ids.get_attribute("value"))
    chosen = sorted(int(part) for part in ids.get_attribute("value").split(","))
    assert chosen == sorted([index.id_at(0, 0), index.id_at(0, 1)]), chosen
    assert "2 tiles chosen" in browser.find_element(By.CSS_SELECTOR, ".map-selection").text
    wait(browser, lambda d: "tiles" in d.find_element(By.CSS_SELECTOR, "output.estimate-text").text)
    browser.execute_script("return new Promise((done) => setTimeout(done, 1100));")  # past the drawing's last click
    # A click on a chosen tile leaves it out again; a click on another adds it.
    click_at(browser, "(map) => ol.proj.fromLonLat(arguments[0])", lonlat(x0 + 100, y0 - 100))
    click_at(browser, "(map) => ol.proj.fromLonLat(arguments[0])", lonlat(x0 + 100, y0 - 64 * 5 - 100))
    wait(browser, lambda d: ids.get_attribute("value").replace(" ", "") == ",".join(
        str(n) for n in sorted([index.id_at(0, 1), index.id_at(1, 0)])))
    shot(browser, "job-new-map")
    browser.find_element(By.CSS_SELECTOR, "form.job-form button[type=submit]:not(.switch-type)").click()
    wait(browser, lambda d: d.title.startswith("Job "))
    job = Job.objects.latest("id")
    assert sorted(job.tiles.values_list("tile__number", flat=True)) == sorted([index.id_at(0, 1), index.id_at(1, 0)])


def test_a_town_chosen_is_outlined_with_its_tiles(live_server, browser, index, owner):
    x0, y0 = ORIGIN[0] + 50, ORIGIN[1] - 50
    town = Town.objects.create(id=5, name="Testheim", crs_wkt=crs_wkt_from_epsg(EPSG),
                               geometry_wkt=f"POLYGON (({x0} {y0}, {x0 + 500} {y0}, {x0 + 500} {y0 - 300}, {x0} {y0 - 300}, {x0} {y0}))")
    town.tiles.set(index_tiles(index, [(0, 0), (0, 1), (1, 0), (1, 1)]))
    log_in(browser, live_server)
    browser.get(f"{live_server.url}/jobs/new/?type=slope")
    Select(browser.find_element(By.NAME, "town")).select_by_value("5")
    wait(browser, lambda d: "4 tiles of the town chosen" in d.find_element(By.CSS_SELECTOR, ".map-selection").text)
    assert browser.find_element(By.NAME, "tile_ids").get_attribute("value") == ""


def test_the_job_map_fits_a_phone(live_server, browser, index, media, owner):
    job = run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:4]))
    browser.set_window_size(390, 844)
    log_in(browser, live_server)
    browser.get(f"{live_server.url}/jobs/{job.pk}/")
    wait(browser, lambda d: d.execute_script(PAINTED) > 500)
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
    # The map's controls take the keyboard: a focused map zooms with +.
    zoom = browser.execute_script("return document.querySelector('[data-map]').map.getView().getZoom();")
    browser.find_element(By.CSS_SELECTOR, "[data-map] .map").click()
    ActionChains(browser).send_keys("+").perform()
    wait(browser, lambda d: d.execute_script("return document.querySelector('[data-map]').map.getView().getZoom();") > zoom)
    shot(browser, "job-map-phone")


def index_tiles(index, cells):
    return Tile.objects.filter(number__in=[index.id_at(row, col) for row, col in cells])


def test_a_data_file_is_drawn_on_its_map(live_server, browser, index, media, owner, tmp_path):
    store(owner, "ramp.tif", raster_bytes(tmp_path, 300, 200))
    store(owner, "zones.gpkg", polygons_bytes(tmp_path, driver="GPKG", suffix=".gpkg"))
    log_in(browser, live_server)
    for name, asked in (("ramp.tif", "/api/v1/datafiles/ramp.tif/tiles/"), ("zones.gpkg", "/api/v1/datafiles/zones.gpkg/geojson/")):
        browser.get(f"{live_server.url}/datafiles/{name}/")
        wait(browser, lambda d, asked=asked: d.execute_script(TILES_ASKED, asked))
        wait(browser, lambda d: d.execute_script(PAINTED) > 500)
        shot(browser, f"datafile-map-{name}")
    problems = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert problems == []
