"""The report in a real headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium): the page loads with no console error, every plot is there with a non-zero size,
and nothing needs scrolling sideways. CI installs the browser and sets BUDGETLM_REQUIRE_BROWSER=1
(.ci/run), so there a missing browser fails the test; elsewhere it is skipped with the command
that installs it."""

import os
import shutil
from pathlib import Path

import pytest

from budgetlm.report.build import make_report

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find(names):
    for name in names:
        path = shutil.which(name) or (name if Path(name).is_file() else None)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = find(["/usr/bin/chromium", "chromium", "chromium-browser"])
    driver_path = find(["/usr/bin/chromedriver", "chromedriver"])
    if chromium is None or driver_path is None:
        missing = (
            "the browser test needs Debian's chromium and chromium-driver: "
            "apt-get install -y chromium chromium-driver"
        )
        if os.environ.get("BUDGETLM_REQUIRE_BROWSER") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.add_argument("--window-size=1280,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def plots_in_browser(driver):
    """Each plot's figure id, its SVG's rendered size, and how many shapes it drew."""
    return driver.execute_script(
        """
        return [...document.querySelectorAll('figure.plot')].map(f => {
            const svg = f.querySelector('svg.chart');
            const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
            const shapes = svg ? svg.querySelectorAll('path, rect[height="20"]').length : 0;
            return [f.dataset.plot, box.width, box.height, shapes];
        });
        """
    )


@pytest.mark.parametrize("which", [["parent"], ["continual"], ["parent", "continual"]])
def test_page_loads_without_errors_and_shows_every_plot(browser, report_runs, tmp_path, which):
    files = make_report([report_runs[w] for w in which], out=tmp_path / "report.html")
    browser.set_window_size(1280, 900)
    browser.get(files.html.resolve().as_uri())
    assert browser.title.endswith("budgetlm report")
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    plots = plots_in_browser(browser)
    assert [p[0] for p in plots] == files.figures and len(files.figures) >= 9
    for plot_id, width, height, shapes in plots:
        assert width > 100 and height > 50, plot_id
        assert shapes > 0, plot_id
    browser.set_window_size(700, 900)  # a narrow window: no sideways scrolling
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
