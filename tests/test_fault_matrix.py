"""docs/fault_matrix.md stays true: every row names a test that exists."""

import re

from helpers import ROOT

# The kit's tests, or the generated project's (in the template folder).
ROW = re.compile(
    r"^\|.*\| `(?P<file>(?:\{\{cookiecutter\.project\}\}/)?tests/[\w/]+\.py)::(?P<test>\w+)` \|$", re.MULTILINE
)


def test_every_fault_names_an_existing_test():
    rows = list(ROW.finditer((ROOT / "docs" / "fault_matrix.md").read_text(encoding="utf-8")))
    assert len(rows) >= 20
    for row in rows:
        source = (ROOT / row["file"]).read_text(encoding="utf-8")
        assert f"def {row['test']}(" in source, f"{row['file']}::{row['test']} does not exist"
