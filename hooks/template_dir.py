"""A Jinja extension that renders the template's absolute folder into the hooks, however the template was given."""

from __future__ import annotations

import os

from jinja2 import Environment
from jinja2.ext import Extension


def template_dir() -> str:
    """The absolute folder of the template whose hooks are being rendered."""
    # Cookiecutter finds hooks as ./hooks after changing into the template's folder, so while it renders
    # them the working directory is that folder. `_repo_dir` cannot say this: it is relative to wherever
    # cookiecutter was started, a folder the hook (run from the new project) never learns.
    return os.getcwd()


class TemplateDirExtension(Extension):
    """Adds `template_dir()` to the templates' globals."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.globals["template_dir"] = template_dir
