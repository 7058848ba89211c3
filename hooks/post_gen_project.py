"""Finish the generated repository (data, actions, git, baseline); the steps live in hooks/bake.py."""

import json
import sys
from pathlib import Path

ANSWERS = json.loads(r"""{{ cookiecutter | tojson }}""")

sys.path.insert(0, str(Path(ANSWERS["_repo_dir"]) / "hooks"))
import bake  # noqa: E402

sys.exit(bake.post_gen(ANSWERS, Path.cwd()))
