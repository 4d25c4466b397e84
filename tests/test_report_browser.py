"""The report in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`
packages, which `.ci/run` installs when missing) driven through Selenium.

It checks what a reader relies on: every interactive figure rendered (points drawn, no JavaScript
error in the console, nothing fetched from anywhere), hovering a point shows its parameters, a
legend click hides a series, the axis pickers redraw the figure, and the cross-dataset index
links to the dataset's page. A screenshot with the hover label is written to the test's temporary
directory, or to $GPNN_SCREENSHOT_DIR when set. Without a browser the tests skip and say why.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from harness.records import load_records
from harness.report.page import write_index, write_report
from harness.report.plots import make_plots
from records_factory import DEFAULT_DATASET, write_synthetic_records

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _skip_reason() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if CHROMIUM is None or CHROMEDRIVER is None:
        return ("no Chromium or ChromeDriver on PATH: as root, apt-get install -y chromium chromium-driver "
                "(.ci/run does this when it can)")
    return None


if _skip_reason():
    pytest.skip(_skip_reason(), allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    write_synthetic_records(root / "results", DEFAULT_DATASET, gpu=True)
    records = load_records(root / "results", DEFAULT_DATASET)
    figures = make_plots(records, root / "plots" / DEFAULT_DATASET, DEFAULT_DATASET)
    write_report(records, root / "plots" / DEFAULT_DATASET, DEFAULT_DATASET, figures)
    write_index(load_records(root / "results"), root / "plots")
    return root / "plots"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # the machine has no network: background services would only fail, noisily
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", "--window-size=1400,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _open(driver, page: Path) -> None:
    driver.get(page.resolve().as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "var plots = document.querySelectorAll('.explorer .plot');"
        "return plots.length > 0 && Array.prototype.every.call(plots, function (p) {"
        "  return p.querySelectorAll('.scatterlayer path.point').length > 0; });"))


def _severe(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_every_figure_renders_with_no_console_error_and_nothing_fetched(site, browser):
    _open(browser, site / DEFAULT_DATASET / "index.html")
    explorers = browser.find_elements(By.CSS_SELECTOR, ".explorer")
    assert len(explorers) >= 3
    for explorer in explorers:
        assert explorer.find_elements(By.CSS_SELECTOR, ".main-svg")
        assert len(explorer.find_elements(By.CSS_SELECTOR, ".scatterlayer .trace")) >= 2
        assert explorer.find_elements(By.CSS_SELECTOR, ".legend .traces")
    # recall@1 against q/s: every series of the synthetic records (each with a metric on both axes)
    assert len(explorers[0].find_elements(By.CSS_SELECTOR, ".legend .traces")) >= 5
    assert _severe(browser) == []
    # everything is inline: the page fetched no script, style, image or data
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    # and the static figures are there too, for papers
    assert browser.find_elements(By.CSS_SELECTOR, "figure img")


def test_hover_shows_the_point_parameters(site, browser, tmp_path):
    _open(browser, site / DEFAULT_DATASET / "index.html")
    plot = browser.find_element(By.ID, "explorer-0")
    browser.execute_script("arguments[0].scrollIntoView();", plot)
    # a point on a front (the lines+markers traces) of a series the synthetic records call hnswlib
    names = browser.execute_script(
        "return document.getElementById('explorer-0').data.map(function (t) { return t.name + '|' + t.mode; });")
    trace = names.index("hnswlib|lines+markers")
    point = plot.find_elements(By.CSS_SELECTOR, ".scatterlayer .trace")[trace].find_elements(By.CSS_SELECTOR, "path.point")[0]
    ActionChains(browser).move_to_element(point).perform()
    label = WebDriverWait(browser, 10).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#explorer-0 .hoverlayer .hovertext"))[0]
    text = label.text
    for needle in ("hnswlib", "parameters:", "ef=", "Recall@1:", "95 % Wilson", "Queries per second:", "1/s"):
        assert needle in text, (needle, text)
    shots = Path(os.environ.get("GPNN_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shots / "report-hover.png"))
    assert _severe(browser) == []


def test_legend_click_hides_a_series_and_the_pickers_redraw(site, browser):
    _open(browser, site / DEFAULT_DATASET / "index.html")
    plot = browser.find_element(By.ID, "explorer-0")
    browser.execute_script("arguments[0].scrollIntoView();", plot)
    visible = "return document.getElementById('explorer-0').data.filter(function (t) { return t.visible !== 'legendonly'; }).length"
    before = browser.execute_script(visible)
    plot.find_elements(By.CSS_SELECTOR, ".legend .traces")[0].click()
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(visible) < before)
    # a series is two traces (all runs, front), hidden together
    assert browser.execute_script(visible) == before - 2

    title = "return document.querySelector('#explorer-0 .ytitle').textContent"
    assert "Queries per second" in browser.execute_script(title)
    Select(browser.find_element(By.CSS_SELECTOR, ".explorer .pick-y")).select_by_value("build_s")
    WebDriverWait(browser, 10).until(lambda d: "Build time" in d.execute_script(title))
    assert Select(browser.find_element(By.CSS_SELECTOR, ".explorer .pick-y-scale")).first_selected_option.text == "log"
    assert _severe(browser) == []


def test_index_page_lists_the_dataset_and_its_best_qps(site, browser):
    browser.get((site / "index.html").resolve().as_uri())
    link = browser.find_element(By.LINK_TEXT, DEFAULT_DATASET)
    cells = browser.find_elements(By.CSS_SELECTOR, "td.leader, td.tied")
    assert cells, "no leader marked at any threshold"
    link.click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".explorer .main-svg"))
    assert browser.current_url.endswith(f"{DEFAULT_DATASET}/index.html")
    assert _severe(browser) == []


def test_at_1400_px_no_table_is_wider_than_its_column(site, browser):
    _open(browser, site / DEFAULT_DATASET / "index.html")
    too_wide = browser.execute_script(
        "return Array.prototype.map.call(document.querySelectorAll('table'), function (t) {"
        "  var column = t.closest('section') || document.body;"
        "  return [t.closest('section') ? t.closest('section').querySelector('h2').textContent : '',"
        "          Math.round(t.getBoundingClientRect().width), Math.round(column.getBoundingClientRect().width)];"
        "}).filter(function (w) { return w[1] > w[2]; });")
    assert browser.execute_script("return window.innerWidth") == 1400
    assert too_wide == []


def test_every_tooltip_value_has_a_unit(site, browser):
    import re

    _open(browser, site / DEFAULT_DATASET / "index.html")
    texts = browser.execute_script(
        "var out = []; document.getElementById('explorer-0').data.forEach(function (t) {"
        "  (t.text || []).forEach(function (x) { out.push(x); }); }); return out;")
    assert texts
    measured = 0
    for text in texts:
        for line in text.split("<br>"):
            found = re.match(r"^([^:<]+): (-?[\d.,]+(?:e[-+]?\d+)?)(.*)$", line)
            if found:
                measured += 1
                unit = found.group(3).strip()
                assert unit and not unit.startswith("["), line
    assert measured > len(texts)  # every tooltip has its measurements, each with its unit
