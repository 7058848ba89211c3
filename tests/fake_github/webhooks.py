"""Real webhook payloads GitHub sent, from @octokit/webhooks-examples."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from .npm import OCTOKIT, require

WEBHOOK_EXAMPLES_JSON = OCTOKIT / "webhooks-examples" / "api.github.com" / "index.json"


@functools.cache
def _webhook_examples() -> dict[str, list[dict[str, Any]]]:
    """Every example payload of @octokit/webhooks-examples, by event name."""
    definitions = json.loads(require(WEBHOOK_EXAMPLES_JSON, "GitHub's webhook examples").read_bytes())
    return {definition["name"]: definition["examples"] for definition in definitions}


def webhook_example(event: str, action: str | None = None, index: int = 0) -> dict[str, Any]:
    """A copy of a payload GitHub really sent for the event (and action), from @octokit/webhooks-examples."""
    examples = _webhook_examples()
    if event not in examples:
        raise LookupError(f"no webhook examples for the event {event!r}; there are: {', '.join(sorted(examples))}")
    matching = [example for example in examples[event] if action is None or example.get("action") == action]
    if index >= len(matching) or index < -len(matching):
        actions = sorted({str(example.get("action")) for example in examples[event]})
        raise LookupError(
            f"{event} has {len(matching)} example(s) for the action {action!r}, not an index {index}; "
            f"its actions are: {', '.join(actions)}"
        )
    return copy.deepcopy(matching[index])
