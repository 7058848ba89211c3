"""The pull request report's page and screenshot: GitHub's markdown look, Mermaid charts drawn, not a blank image."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

import report_page
from mlgitops.model_report import MetricRow, metrics_chart

CHART = metrics_chart(
    [
        MetricRow("f1_macro", 0.95, 0.96, 0.01, 0.01, True, "better"),
        MetricRow("accuracy", 0.93, 0.81, -0.12, 0.01, True, "regression"),
    ]
)
REPORT = f"""## Model report

| metric | base | PR | delta |
|---|---|---|---|
| f1_macro | 0.9500 | 0.9600 | +0.0100 |

{CHART}

```python
print("code stays code")
```

<details><summary>Changed params</summary>

`model.C`: 1.0 → 0.3

</details>
"""


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    return report_page.write_page(REPORT, tmp_path_factory.mktemp("report"))


def test_the_page_is_github_flavoured_markdown_with_its_assets_beside_it(page):
    html = page.read_text(encoding="utf-8")
    assert "<table>" in html and "<th>metric</th>" in html
    assert '<pre class="mermaid">xychart-beta' in html
    assert '<code class="language-python">' in html and "<details><summary>Changed params</summary>" in html
    assert {p.name for p in page.parent.iterdir()} == {"report.html", "github-markdown.css", "mermaid.min.js"}


def test_the_charts_are_drawn_in_chromium(page):
    dom = report_page.rendered_dom(page)
    assert 'data-charts="drawn"' in dom
    # Mermaid replaced the chart's source with its drawing.
    chart = dom.split('class="mermaid"', 1)[1].split("</pre>", 1)[0]
    assert "<svg" in chart
    # The report's chart as Mermaid draws it: the pull request's bars and the base's line, both present.
    assert 'class="bar-plot-0"' in chart and 'class="line-plot-1"' in chart


def test_the_screenshot_is_the_whole_page_and_not_blank(page, tmp_path):
    png = report_page.screenshot(page, tmp_path / "report.png")
    image = Image.open(png).convert("RGB")
    assert image.width == report_page.WIDTH and 300 < image.height < report_page.MAX_HEIGHT
    # A blank page is one colour; the table, text and chart give many, and the chart's bars fill a band.
    assert len(image.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50
    assert image.getbbox() is not None
    band = image.crop((0, image.height // 4, image.width, image.height * 3 // 4)).convert("L")
    assert band.getextrema()[0] < 128


def test_a_missing_asset_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setitem(report_page.ASSETS, "mermaid.min.js", tmp_path / "absent.js")
    with pytest.raises(FileNotFoundError, match=r"absent.js is missing: run `npm ci --prefix tests`"):
        report_page.write_page(REPORT, tmp_path / "out")


def test_the_verdicts_emoji_are_drawn_in_colour(tmp_path):
    # Without an emoji font Chromium draws the report's ✅ and ❌ as grey boxes.
    page = report_page.write_page("# ✅ ❌\n", tmp_path / "emoji")
    image = Image.open(report_page.screenshot(page, tmp_path / "emoji.png")).convert("RGB")
    pixels = list(image.crop((0, 0, 300, 150)).getdata())
    assert any(g > 120 and g - max(r, b) > 40 for r, g, b in pixels), "no green check mark drawn"
    assert any(r > 150 and r - max(g, b) > 40 for r, g, b in pixels), "no red cross drawn"
