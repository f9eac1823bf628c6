"""The MUI-vs-performance chart in a real browser: a trusted mouse click on a family in
the legend focuses it (the other families' marks fade), and clicks add, remove and undo.

The page is the one moemui writes (:func:`moemui.charts.save_chart`, Vega inlined), opened
from a file in headless Chromium, driven by Selenium through Debian's chromedriver named
by its path (no driver is downloaded). As root: ``apt-get install -y
--no-install-recommends chromium chromium-driver`` (.ci/run does). Skipped without them.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from test_charts import CHECKPOINTS, mui_perf_tables

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
FOCUSED, FADED = "0.9", "0.1"  # the chart's opacity of a focused and a faded family

#: per mark type and family, the opacities its SVG elements are drawn with (Vega's SVG
#: renderer binds each element to its scenegraph item, whose datum is the table row)
OPACITIES = """
const done = arguments[arguments.length - 1];
window.vegaView.runAsync().then(() => {
  const out = {};
  for (const type of ["symbol", "line", "text"]) {
    for (const el of document.querySelectorAll(`g.mark-${type}.role-mark > *`)) {
      const family = el.__data__ && el.__data__.datum && el.__data__.datum.family;
      const key = `${type} ${family}`;
      (out[key] = out[key] || []).push(el.getAttribute("opacity"));
    }
  }
  done(out);
});
"""


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "needs Debian's chromium and chromedriver on PATH (as root: apt-get install -y "
            "--no-install-recommends chromium chromium-driver)"
        )
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="needs selenium (the dev extra: pip install -e '.[dev]')"
    )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    yield driver
    driver.quit()


def _opened(browser, path):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(path.as_uri())
    WebDriverWait(browser, 15).until(lambda d: d.execute_script("return !!window.vegaView"))
    # every click the page receives: trusted (a real mouse event, not a script's)?
    browser.execute_script(
        "window.clicks = []; document.addEventListener('click', "
        "e => window.clicks.push(e.isTrusted), true);"
    )


def _click_legend(browser, family: str, part: str = "label"):
    """A real mouse click at the screen position of ``family``'s legend label or symbol."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    labels = browser.find_elements(By.CSS_SELECTOR, "g.role-legend-label text")
    symbols = browser.find_elements(By.CSS_SELECTOR, "g.role-legend-symbol path")
    # the family legend comes first, then the release legend (labels 1, 2)
    index = [label.text for label in labels].index(family)
    target = labels[index] if part == "label" else symbols[index]
    ActionChains(browser).move_to_element(target).click().perform()


def _state(browser) -> dict[str, set[str]]:
    """Mark type and family -> the opacities its elements are drawn with."""
    return {key: set(values) for key, values in browser.execute_async_script(OPACITIES).items()}


def _want(focused: set[str], fits: bool) -> dict[str, set[str]]:
    """The drawn marks: points of a, b, c (three checkpoints), a's fit curves (if
    ``fits``), c's series line and step labels; ``focused`` opaque, the other families
    faded (none: all)."""
    marks = ["symbol a", "symbol b", "symbol c", *(["line a"] if fits else []), "line c"]
    marks.append("text c")
    return {
        mark: {FOCUSED if not focused or mark.split()[1] in focused else FADED} for mark in marks
    }


@pytest.fixture(scope="module")
def bundle():
    from moemui.charts import vega_bundle

    return vega_bundle()


# the selection is defined on the fit curves' layer: it works without a curve too
@pytest.mark.parametrize("fits", [True, False], ids=["with-fits", "no-fit"])
def test_clicking_a_family_in_the_legend_focuses_it(browser, bundle, tmp_path, fits):
    from moemui.charts import save_chart
    from moemui.charts.performance import mui_performance_chart

    table, fit_table = mui_perf_tables()
    if not fits:
        fit_table["slope"] = np.nan  # every fit undefined: no curve drawn
    page = tmp_path / "mui_performance.html"
    chart = mui_performance_chart(table, fit_table, "glu", 0.001)
    save_chart(chart, {"html": page}, bundle)
    _opened(browser, page)

    def want(focused):
        return _want(focused, fits)

    state = _state(browser)
    assert state == want(set()), state
    _click_legend(browser, "c")
    assert _state(browser) == want({"c"})
    # the step labels drawn are those of c's checkpoints, in both panels
    steps = browser.execute_script(
        "return Array.from(document.querySelectorAll('g.mark-text.role-mark > text'))"
        ".map(t => t.textContent)"
    )
    assert sorted(steps) == sorted([str(int(s)) for s in CHECKPOINTS.values()] * 2)
    _click_legend(browser, "a", part="symbol")  # a second family joins the focus
    assert _state(browser) == want({"a", "c"})
    _click_legend(browser, "c")  # a focused family leaves it
    assert _state(browser) == want({"a"})
    _click_legend(browser, "a")  # none focused: all shown again
    assert _state(browser) == want(set())
    clicks = browser.execute_script("return window.clicks")
    assert clicks == [True] * 4, clicks
