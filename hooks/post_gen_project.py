"""Finish the generated repository (data, actions, git, baseline); the steps live in hooks/bake.py."""

import json
import sys
from pathlib import Path

ANSWERS = json.loads(r"""{{ cookiecutter | tojson }}""")
# Not `_repo_dir`: it may be relative to a folder this script, run from the new project, never learns.
# Single quotes, as the rendered JSON string is in double quotes (and tojson escapes single ones).
TEMPLATE = Path(json.loads(r'{{ template_dir() | tojson }}'))  # fmt: skip

sys.path.insert(0, str(TEMPLATE / "hooks"))
import bake  # noqa: E402

sys.exit(bake.post_gen(ANSWERS, Path.cwd(), TEMPLATE))
