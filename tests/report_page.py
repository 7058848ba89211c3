"""The pull request report as GitHub shows it: an HTML page and a PNG screenshot of it, made offline.

The markdown is rendered with markdown-it-py (CommonMark with GitHub's tables and strikethrough, raw HTML kept as
GitHub keeps `<details>`), styled with GitHub's own markdown CSS (npm `github-markdown-css`), and its ```mermaid
blocks are drawn by Mermaid (npm `mermaid`), as GitHub draws them. Both files are copied next to the page, so the
folder opens anywhere without a network. Headless Chromium (Debian's `chromium`) takes the screenshot once the
charts are drawn; as root it needs `--no-sandbox`.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "tests" / "node_modules"
ASSETS = {
    "github-markdown.css": NODE_MODULES / "github-markdown-css" / "github-markdown-light.css",
    "mermaid.min.js": NODE_MODULES / "mermaid" / "dist" / "mermaid.min.js",
}
# The page's width is GitHub's comment column; the height is the page's own, measured once its charts are drawn.
WIDTH, MAX_HEIGHT = 1012, 8000
# Chromium's flags on a machine without a network or a display (its background services would only fail).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="github-markdown.css">
<style>
  body {{ margin: 0; background: #ffffff; }}
  .markdown-body {{ box-sizing: border-box; max-width: 980px; margin: 0 auto; padding: 32px 16px; }}
  pre.mermaid {{ background: transparent; text-align: center; }}
</style>
</head>
<body>
<article class="markdown-body">
{body}
</article>
<script src="mermaid.min.js"></script>
<script>
  mermaid.initialize({{ startOnLoad: false, securityLevel: "strict" }});
  mermaid.run().then(
    () => {{
      document.body.setAttribute("data-charts", "drawn");
      document.body.setAttribute("data-height", document.documentElement.scrollHeight);
    }},
    (error) => document.body.setAttribute("data-charts", "failed: " + error),
  );
</script>
</body>
</html>
"""


def markdown_to_html(text: str) -> str:
    """GitHub-flavoured markdown to HTML, with each ```mermaid block left for Mermaid to draw."""
    renderer = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    default_fence = renderer.renderer.rules["fence"]

    def fence(tokens, index, options, env):  # type: ignore[no-untyped-def]
        token = tokens[index]
        if token.info.strip() == "mermaid":
            return f'<pre class="mermaid">{html.escape(token.content)}</pre>\n'
        return default_fence(tokens, index, options, env)

    renderer.renderer.rules["fence"] = fence
    return renderer.render(text)


def write_page(markdown: str, folder: Path, title: str = "Model report") -> Path:
    """Write `report.html` and the CSS and Mermaid it uses into `folder`; return the page."""
    missing = [str(path) for path in ASSETS.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]} is missing: run `npm ci --prefix tests` (make test does).")
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in ASSETS.items():
        shutil.copyfile(source, folder / name)
    page = folder / "report.html"
    page.write_text(PAGE.format(title=html.escape(title), body=markdown_to_html(markdown)), encoding="utf-8")
    return page


def chromium() -> str | None:
    """The Chromium on this machine, if any."""
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def run_chromium(page: Path, *flags: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on the page, given time to run its scripts (Mermaid), in a fresh profile."""
    binary = chromium()
    if binary is None:
        raise FileNotFoundError("Chromium is not installed (Debian's package `chromium`).")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000", *flags]
        return subprocess.run(
            [*command, page.resolve().as_uri()], capture_output=True, text=True, timeout=timeout, check=False
        )


def screenshot(page: Path, png: Path) -> Path:
    """A PNG of the whole page in a window of GitHub's comment width, charts drawn."""
    found = re.search(r'data-height="(\d+)"', rendered_dom(page))
    height = min(int(found.group(1)), MAX_HEIGHT) if found else MAX_HEIGHT
    done = run_chromium(page, f"--window-size={WIDTH},{height}", f"--screenshot={png.resolve()}")
    if not png.is_file():
        raise RuntimeError(f"Chromium wrote no screenshot: {done.stderr.strip()[-500:]}")
    return png


def rendered_dom(page: Path) -> str:
    """The page's DOM once its scripts ran: whether the charts were drawn, and the page's height."""
    return run_chromium(page, f"--window-size={WIDTH},1000", "--dump-dom").stdout
