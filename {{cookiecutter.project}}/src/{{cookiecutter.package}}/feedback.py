{%- set regression = cookiecutter.task == "regression" -%}
"""Ground truth that arrives later: which requests the service answered, and the true labels sent for them.

BentoML's monitor writes its logs asynchronously, so a request id just answered may not be in them yet. The
service therefore keeps its own append-only index of the requests it answered (one file per worker process:
request id, Bento version, model, {{ "predicted numbers" if regression else "labels and probabilities" }}, no inputs) and one feedback file, both in the same
folder, next to the prediction log. A worker that does not know an id reads what the other workers appended
since it last looked; feedback is checked and appended under a file lock, so an id gets its labels once.
"""

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

# Where the service keeps the index and the feedback when MLGITOPS_FEEDBACK_DIR is not set: under the working
# directory, which is the Bento's src/ when BentoML serves it (as BentoML's own monitor log is by default).
DEFAULT_FOLDER = Path("monitoring") / "feedback"
FOLDER_VARIABLE = "MLGITOPS_FEEDBACK_DIR"
FEEDBACK_FILE = "feedback.jsonl"
LOCK_FILE = "feedback.lock"

{% if regression %}
class Answered(Protocol):
    value: float
{%- else %}
class Answered(Protocol):
    label: str
    probabilities: dict[str, float]
{%- endif %}


class FeedbackRefused(ValueError):
    """Feedback the service does not store; the message is one sentence for the caller."""


class Tail:
    """The JSON lines appended to a set of files since the last read, file by file (a torn last line waits)."""

    def __init__(self, folder: Path, pattern: str) -> None:
        self.folder, self.pattern = folder, pattern
        self.offsets: dict[Path, int] = {}

    def new_records(self) -> Iterator[dict[str, Any]]:
        for path in sorted(self.folder.glob(self.pattern)):
            with path.open("rb") as handle:
                handle.seek(self.offsets.get(path, 0))
                for line in handle:
                    if not line.endswith(b"\n"):
                        break
                    self.offsets[path] = self.offsets.get(path, 0) + len(line)
                    with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
                        record = json.loads(line)
                        if isinstance(record, dict):
                            yield record


class FeedbackStore:
    """The requests this service answered and the true labels sent for them, in one folder shared by its workers."""
{% if regression %}
    def __init__(self, folder: Path, model: str, version: str | None) -> None:
        self.folder = folder
{%- else %}
    def __init__(self, folder: Path, classes: Sequence[str], model: str, version: str | None) -> None:
        self.folder, self.classes = folder, list(classes)
{%- endif %}
        self.model, self.version = model, version
        folder.mkdir(parents=True, exist_ok=True)
        self.index = folder / f"requests.{os.getpid()}.jsonl"
        self.feedback = folder / FEEDBACK_FILE
        # Request id -> instances answered, and ids with feedback, as far as this worker has read.
        self.answered: dict[str, int] = {}
        self.given: set[str] = set()
        self.requests_tail = Tail(folder, "requests.*.jsonl")
        self.feedback_tail = Tail(folder, FEEDBACK_FILE)

    @classmethod
{%- if regression %}
    def from_environment(cls, model: str, version: str | None) -> "FeedbackStore":
        """The store in MLGITOPS_FEEDBACK_DIR (the release sets it per environment), or the default folder."""
        folder = os.environ.get(FOLDER_VARIABLE) or str(DEFAULT_FOLDER)
        return cls(Path(folder), model, version)
{%- else %}
    def from_environment(cls, classes: Sequence[str], model: str, version: str | None) -> "FeedbackStore":
        """The store in MLGITOPS_FEEDBACK_DIR (the release sets it per environment), or the default folder."""
        folder = os.environ.get(FOLDER_VARIABLE) or str(DEFAULT_FOLDER)
        return cls(Path(folder), classes, model, version)
{%- endif %}

    def record(self, request_id: str, found: Sequence[Answered]) -> None:
        """Index an answered request: its id, the release that answered and what it answered."""
        line = {
            "request_id": request_id,
            "timestamp": dt.datetime.now(dt.UTC).isoformat(),
            "bento_version": self.version,
            "model": self.model,
{%- if regression %}
            "labels": [prediction.value for prediction in found],
{%- else %}
            "labels": [prediction.label for prediction in found],
            "classes": self.classes,
            "probabilities": [[prediction.probabilities[name] for name in self.classes] for prediction in found],
{%- endif %}
        }
        append(self.index, line)
        self.answered[request_id] = len(found)
{% if regression %}
    def accept(self, request_id: str, labels: Sequence[float]) -> None:
        """Store the true values of an answered request (the service checked they are finite numbers), once."""
{%- else %}
    def accept(self, request_id: str, labels: Sequence[str]) -> None:
        """Store the true labels of an answered request, one per instance in request order, once."""
        unknown = [label for label in labels if label not in self.classes]
        if unknown:
            raise FeedbackRefused(
                f"{unknown[0]!r} is not one of the model's classes ({', '.join(map(repr, self.classes))})."
            )
{%- endif %}
        with locked(self.folder / LOCK_FILE):
            instances = self.instances(request_id)
            if instances is None:
                raise FeedbackRefused(f"no request {request_id!r} was answered here: send the id /predict returned.")
            if len(labels) != instances:
                raise FeedbackRefused(
                    f"request {request_id!r} had {instances} instance(s): send one {{ "value" if regression else "label" }} per instance, in order."
                )
            self.given.update(record.get("request_id") for record in self.feedback_tail.new_records())
            if request_id in self.given:
                raise FeedbackRefused(f"request {request_id!r} has its feedback already; it is stored once.")
            now = dt.datetime.now(dt.UTC).isoformat()
            append(self.feedback, {"request_id": request_id, "timestamp": now, "labels": list(labels)})
            self.given.add(request_id)

    def instances(self, request_id: str) -> int | None:
        """How many instances the request had, reading what other workers indexed when this one does not know it."""
        if request_id not in self.answered:
            for record in self.requests_tail.new_records():
                if isinstance(record.get("labels"), list):
                    self.answered[str(record.get("request_id"))] = len(record["labels"])
        return self.answered.get(request_id)


def append(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line in one write with O_APPEND: readers see whole lines, or a torn last one they skip."""
    data = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on a file, shared by every worker of the service on this machine."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
