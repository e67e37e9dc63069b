"""The HTML reports as a person sees them: headless Chromium (Debian's chromium and
chromium-driver, which scripts/setup.sh installs) renders the bench and fleet reports at a
laptop's 1280×800 and a phone's 390×844. Nothing may make the page scroll sideways, and every
chart must have something drawn in it."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.toolkit.cli import app
from edgekit.toolkit.fleet import synthetic as syn
from edgekit.toolkit.fleet.collector import Collector
from edgekit.toolkit.fleet.ingest import Received
from tests.toolkit.fleet.fleet_helpers import encoded, metrics

VIEWPORTS = [(1280, 800), (390, 844)]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="chromium and chromium-driver: run scripts/setup.sh"
)

# Per figure: how many pixels carry colour (a plotted line, bar or heat map cell); axes, text
# and grid are grey, so an empty chart has none.
_CHART_INK = """
const out = [];
for (const img of document.querySelectorAll('figure img')) {
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let ink = 0;
  for (let i = 0; i < d.length; i += 4) {
    const [r, gr, b] = [d[i], d[i + 1], d[i + 2]];
    if (Math.max(r, gr, b) - Math.min(r, gr, b) > 60) ink++;
  }
  out.push({alt: img.alt, shown: img.getBoundingClientRect().width, ink: ink});
}
return out;
"""


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def _render(driver, page: Path, width: int, height: int) -> dict:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )
    driver.get(page.resolve().as_uri())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # every embedded image decoded
        if driver.execute_script(
            "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"
        ):
            break
        time.sleep(0.1)
    return {
        "scroll_width": driver.execute_script("return document.scrollingElement.scrollWidth"),
        "inner_width": driver.execute_script("return window.innerWidth"),
        "wide": driver.execute_script(
            "return [...document.body.querySelectorAll('*')]"
            ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)"
            ".filter(e => !e.closest('.scroll')).map(e => e.tagName).slice(0, 5)"
        ),
        "charts": driver.execute_script(_CHART_INK),
    }


@pytest.fixture(scope="module")
def bench_report(regression_bundle, tmp_path_factory) -> Path:
    """A real bench run with the native scikit-learn baseline beside the ONNX variant."""
    work = tmp_path_factory.mktemp("bench-report")
    bundle = work / "bundle"
    shutil.copytree(regression_bundle, bundle)
    out = work / "rep"
    res = CliRunner().invoke(
        app,
        ["bench", str(bundle), "--duration", "100ms", "--batch", "1,8", "--trust-code",
         "--no-save", "--json", "-o", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert any(r["system"] != "onnxruntime" for r in json.loads(res.stdout)["records"])
    return out / "report.html"


@pytest.fixture(scope="module")
def fleet_report(tmp_path_factory) -> Path:
    """Three devices sending a steady 20/s each in 1 s windows, one drifting, one alert."""
    work = tmp_path_factory.mktemp("fleet-report")
    db = work / "fleet.db"
    collector = Collector.open(db)
    rng = np.random.default_rng(0)
    ref = syn.feature_reference(6)
    t0 = time.time() - 120
    items = []
    for i, thing in enumerate(["sim-001", "sim-002", "a-device-with-a-rather-long-thing-name"]):
        items.append(encoded("hello", thing, 1, syn.hello_body(target="host"), end=t0))
        for seq in range(2, 60):
            shift = {"f02": 0.5} if i == 0 and seq > 30 else None
            items.append(
                metrics(thing, seq, rng, reference=ref, requests=20, shift=shift,
                        latency_ms=1 + 3 * i, end=t0 + seq + 0.3 * i)
            )  # fmt: skip
    collector.process([Received(t, p) for t, p in items])
    collector.close()
    out = work / "fleet.html"
    res = CliRunner().invoke(app, ["fleet", "report", "--db", str(db), "-o", str(out)])
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.parametrize("size", VIEWPORTS, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("which", ["bench_report", "fleet_report"])
def test_report_fits_the_window_and_every_chart_has_ink(browser, which, size, request):
    page = request.getfixturevalue(which)
    seen = _render(browser, page, *size)
    assert seen["inner_width"] == size[0]
    assert seen["scroll_width"] <= seen["inner_width"], seen  # no sideways scrolling
    assert not seen["wide"], seen
    assert len(seen["charts"]) >= 2, seen["charts"]
    for chart in seen["charts"]:
        assert 0 < chart["shown"] <= size[0], chart
        assert chart["ink"] > 50, f"empty chart: {chart}"


def test_a_wide_unwrapped_table_would_fail(browser, tmp_path):
    """The check can fail: the same page without the scroll box overflows a phone."""
    from edgekit.toolkit.reports import HtmlReport

    report = HtmlReport("wide")
    report.table([{f"column number {i}": 1234567.0 for i in range(25)}])
    page = tmp_path / "wide.html"
    page.write_text(report.html().replace('class="scroll"', 'class="plain"'))
    seen = _render(browser, page, 390, 844)
    assert seen["scroll_width"] > seen["inner_width"]
