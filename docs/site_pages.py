"""MkDocs hooks: the pages that are made from the repository's own sources, so each fact has one home.

- `index.md`: the README; `benchmarks.md`: BENCHMARKS.md (links between them rewritten for the site).
- `options.md`: every question of `cookiecutter.json`, with its prompt, choices and default.
- `releases.md`, `monitoring.md`: sections of the generated project's README, rendered for the default answers.
- `report.md`: the pull request report `make demo` wrote, with the screenshot it took of the report as GitHub
  renders it, when the demo has run; otherwise the page says how to make it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_README = ROOT / "{{cookiecutter.project}}" / "README.md"
DEMO_REPORT = ROOT / "demo" / "cancer-classifier" / "reports" / "pr" / "model_report.md"
DEMO_SCREENSHOT = ROOT / "demo" / "report" / "report.png"
# Repository files the README links to, and where they are on the site.
SITE_LINKS = {"BENCHMARKS.md": "benchmarks.md", "docs/": ""}


def site_links(text: str) -> str:
    """Rewrite the README's links to repository files into links between the site's pages."""
    for source, target in SITE_LINKS.items():
        text = text.replace(f"]({source}", f"]({target}")
    return text


def cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def options_page() -> str:
    """A table of cookiecutter.json's questions: name, prompt, choices (with their descriptions), default."""
    config = json.loads((ROOT / "cookiecutter.json").read_text(encoding="utf-8"))
    prompts = config.get("__prompts__", {})
    rows = []
    for name, value in config.items():
        if name.startswith("_"):
            continue
        prompt = prompts.get(name, "")
        described = prompt if isinstance(prompt, dict) else {}
        question = described.get("__prompt__", "") if described else prompt
        if isinstance(value, list):
            choices = "<br>".join(
                f"`{choice}`" + (f": {cell(described[choice])}" if choice in described else "") for choice in value
            )
            default = f"`{value[0]}`"
        else:
            choices = "free text"
            default = f"`{cell(value)}`" if value else "(empty)"
        rows.append(f"| `{name}` | {cell(question)} | {choices} | {default} |")
    return "\n".join(
        [
            "# Template options",
            "",
            "Every question `cookiecutter` asks, read from `cookiecutter.json` when this site is built. A default",
            "written with `{{ cookiecutter.* }}` is derived from earlier answers. What each choice changes in the",
            "generated project is in [the questions](index.md#the-questions).",
            "",
            "| question | prompt | choices | default |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    )


def rendered_template_readme() -> str:
    """The generated project's README for the default answers, rendered as cookiecutter would."""
    from cookiecutter.environment import StrictEnvironment
    from cookiecutter.generate import generate_context
    from cookiecutter.prompt import prompt_for_config

    sys.path.insert(0, str(ROOT))
    context = generate_context(str(ROOT / "cookiecutter.json"))
    context["cookiecutter"] = prompt_for_config(context, no_input=True)
    context["cookiecutter"]["_repo_dir"] = str(ROOT)
    environment = StrictEnvironment(context=context, keep_trailing_newline=True)
    return environment.from_string(TEMPLATE_README.read_text(encoding="utf-8")).render(**context)


def section(markdown: str, heading: str, level: int = 2) -> str:
    """One section of a markdown text (its heading at `level`), with its subsections, without the heading."""
    marks = "#" * level
    found = re.search(
        rf"^{marks} {re.escape(heading)}\n(.*?)(?=^#{{1,{level}}} |\Z)", markdown, re.MULTILINE | re.DOTALL
    )
    if not found:
        raise ValueError(f"the generated README has no section {heading!r}")
    return found.group(1)


def generated_page(title: str, *parts: tuple[str, str]) -> str:
    """A page of sections of the generated README: (heading, body) pairs under the page's title."""
    note = (
        "!!! note\n    These sections are the generated project's README (`local` deploy target, default "
        "answers), rendered when the site is built: what a team reads in its own repository.\n"
    )
    body = "\n".join(f"## {heading}\n{text}" for heading, text in parts)
    return f"# {title}\n\n{note}\n{body}"


def anchors(markdown: str) -> set[str]:
    """The ids MkDocs gives a page's headings."""
    from markdown.extensions.toc import slugify

    return {slugify(title, "-") for title in re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)}


def cross_page_links(pages: dict[str, str]) -> dict[str, str]:
    """Point a generated page's `#anchor` links at the generated page that has the heading, when it is another."""
    ids = {name: anchors(text) for name, text in pages.items()}

    def fix(name: str, text: str) -> str:
        def target(found: re.Match[str]) -> str:
            anchor = found.group(1)
            if anchor in ids[name]:
                return found.group(0)
            elsewhere = next((other for other, known in ids.items() if anchor in known), None)
            return f"]({elsewhere}#{anchor})" if elsewhere else found.group(0)

        return re.sub(r"\]\(#([\w-]+)\)", target, text)

    return {name: fix(name, text) for name, text in pages.items()}


def report_page() -> str:
    lines = [
        "# A pull request's report",
        "",
        "The one sticky comment a pull request gets: data checks, metrics against the base branch, changed",
        "parameters, charts and the regression gate. Below is the report `make demo` built for a pull request",
        "that sets `model.C` to 0.3 on the default project, as GitHub renders it.",
        "",
    ]
    if DEMO_REPORT.is_file():
        if DEMO_SCREENSHOT.is_file():
            lines += ["![The report as GitHub shows it, screenshot by headless Chromium](report.png)", ""]
            lines += ["The same report, rendered by this site:", ""]
        return "\n".join([*lines, "---", "", DEMO_REPORT.read_text(encoding="utf-8")])
    return "\n".join(
        [*lines, "!!! info", "    Run `make demo`, then build the site again: this page shows the report it wrote.", ""]
    )


def on_files(files: Files, config: Any) -> Files:
    """Add the pages made from the repository's sources."""
    readme = rendered_template_readme()
    generated = {
        "releases.md": generated_page("Releases", ("Releases", section(readme, "Releases"))),
        "monitoring.md": generated_page(
            "Watching the live model",
            ("What the served model records", section(readme, "What the served model records", level=3)),
            ("Feedback: the true labels, later", section(readme, "Feedback: the true labels, later", level=3)),
            ("The Model monitor", section(readme, "Watching the live model")),
        ),
    }
    pages = {
        "index.md": site_links((ROOT / "README.md").read_text(encoding="utf-8")),
        "benchmarks.md": site_links((ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")),
        "options.md": options_page(),
        "report.md": report_page(),
        **cross_page_links(generated),
    }
    for name, content in pages.items():
        files.append(File.generated(config, name, content=content))
    if DEMO_REPORT.is_file() and DEMO_SCREENSHOT.is_file():
        files.append(File.generated(config, "report.png", abs_src_path=str(DEMO_SCREENSHOT)))
    return files
