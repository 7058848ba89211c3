{%- set regression = cookiecutter.task == "regression" -%}
{%- set service = "Regressor" if regression else "Classifier" -%}
{%- if regression -%}
"""The BentoML service: validated JSON in, predicted numbers out from one pinned model, counted and logged."""
{%- else -%}
"""The BentoML service: validated JSON in, labels and probabilities out from one pinned model, counted and logged."""
{%- endif %}

import functools
import os
import secrets
from pathlib import Path
from typing import Annotated, Any

import bentoml
import joblib
from bentoml._internal.context import trace_context
from pydantic import BaseModel, Field

from .feedback import FeedbackRefused, FeedbackStore
from .metadata import read_meta, sha256
from .params import load_monitor
from .registry import tag_for
from .serving import (
    MAX_INSTANCES,
{%- if regression %}
    MAX_MAGNITUDE,
{%- endif %}
    MONITOR,
    SYNTHETIC_HEADER,
    Answer,
    JsonOnly,
    Prediction,
    Predictions,
    Recorder,
    instance_model,
{%- if regression %}
    numpy_numbers,
    pipeline_numbers,
{%- else %}
    numpy_probabilities,
    pipeline_probabilities,
{%- endif %}
    predictions,
    probe_instance,
    readiness,
)

# Relative to the working directory: the project root at build time, the Bento's src/ when served
# (bentofile.yaml includes it). `python -m {{ cookiecutter.package }} register` stores the model under
# this tag before `bentoml build`; importing the service never writes to BentoML's store.
MODEL_META = Path("models/model.json")
META = read_meta(MODEL_META)
TAG = tag_for(META)
FEATURES = [f["name"] for f in META["features"]]
Instance = instance_model(META["features"])
# What the service logs, from the params.yaml the Bento carries (bentofile.yaml includes it): the Bento logs
# as its release was configured. Checked on import: `bentoml build` refuses what the service would refuse.
RECORDING = load_monitor(FEATURES)


def current_request_id() -> int:
    """BentoML's id of the current request: the one its monitor logs (X-BentoML-Request-ID has it in hex)."""
    # BentoML's public API does not expose it; bentoml is pinned and the kit's tests hold the answered id equal
    # to the logged one. Outside a server (a test calling the service in process) there is none: make one.
    if trace_context.request_id is None:
        trace_context.request_id = secrets.randbits(64)
    return trace_context.request_id


# BentoML's default of one worker: scale out with replicas. A worker per core (each with its own copy
# of the model) helped one model family and hurt the other on 2 cores (see the serving benchmark).
@bentoml.service(traffic={"timeout": 30})
class {{ service }}:
    """Serves the model this Bento was built with, and nothing else."""

    model_ref = bentoml.models.BentoModel(TAG)

    def __init__(self) -> None:
        self.meta = read_meta(Path(self.model_ref.path_of("model.json")))
        model_file = Path(self.model_ref.path_of("model.joblib"))
        if sha256(model_file) != self.meta["sha256"]:
            raise RuntimeError(f"the stored model {TAG} does not match its digest; refusing to serve it")
        self.model = joblib.load(model_file)
{%- if regression %}
        # The numpy path gives the pipeline's numbers (tests hold them equal) in a fraction of its time;
        # SERVING_FAST_PATH=0 serves through the pipeline itself, to compare or to rule it out.
        fast = numpy_numbers(self.model, Instance) if os.environ.get("SERVING_FAST_PATH") != "0" else None
        self.numbers = fast or pipeline_numbers(self.model, FEATURES)
        # Set when BentoML serves a Bento: every logged prediction names the release that made it.
        version = bentoml.server_context.bento_version
        self.recorder = Recorder(RECORDING, self.meta["features"], self.meta["bins"], TAG, version)
        self.feedback_store = FeedbackStore.from_environment(TAG, version)
{%- else %}
        self.classes = [str(c) for c in self.model.classes_]
        # The numpy path gives the pipeline's probabilities (tests hold them equal) in a fraction of its
        # time; SERVING_FAST_PATH=0 serves through the pipeline itself, to compare or to rule it out.
        fast = numpy_probabilities(self.model, Instance) if os.environ.get("SERVING_FAST_PATH") != "0" else None
        self.probabilities = fast or pipeline_probabilities(self.model, FEATURES)
        # Set when BentoML serves a Bento: every logged prediction names the release that made it.
        version = bentoml.server_context.bento_version
        self.recorder = Recorder(RECORDING, self.meta["features"], self.classes, TAG, version)
        self.feedback_store = FeedbackStore.from_environment(self.classes, TAG, version)
{%- endif %}
        self.ready = readiness(self.answer_probe)

    def answer_probe(self) -> list[Prediction]:
        """Predict one instance built from the model's metadata, as a request would be."""
        probe = Instance.model_validate(probe_instance(self.meta["features"]))
{%- if regression %}
        return predictions(self.numbers([probe]))
{%- else %}
        return predictions(self.classes, self.probabilities([probe]))
{%- endif %}

    def __is_ready__(self) -> bool:
        """/readyz: ready once the model has answered the probe (tried once, then remembered)."""
        return self.ready()

    def infer(self, instances: list[BaseModel]) -> Predictions:
        """The model's predictions of validated instances, neither counted nor logged."""
{%- if regression %}
        return Predictions(model=TAG, predictions=predictions(self.numbers(instances)))
{%- else %}
        return Predictions(model=TAG, predictions=predictions(self.classes, self.probabilities(instances)))
{%- endif %}

    @bentoml.api
    def predict(
        self,
        instances: Annotated[list[Instance], Field(min_length=1, max_length=MAX_INSTANCES)],
        ctx: bentoml.Context,
    ) -> Answer:
{%- if regression %}
        """Predict a number for each instance; count it in its decile bin and log it as params.yaml says,
{%- else %}
        """Predict a label and class probabilities for each instance; count them and log them as params.yaml says,
{%- endif %}
        unless the request is one of the release's own checks (it carries the X-MLGitOps-Synthetic header)."""
        answered = self.infer(instances)
        request_id = current_request_id()
        if SYNTHETIC_HEADER not in ctx.request.headers:
            monitor = functools.partial(bentoml.monitor, MONITOR)
            self.recorder.record(request_id, instances, answered.predictions, monitor)
            self.feedback_store.record(str(request_id), answered.predictions)
        return Answer(model=answered.model, predictions=answered.predictions, request_id=str(request_id))

    @bentoml.api
    def feedback(
        self,
        request_id: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[0-9]+$")],
{%- if regression %}
        labels: Annotated[
            list[Annotated[float, Field(allow_inf_nan=False, ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]],
            Field(min_length=1, max_length=MAX_INSTANCES),
        ],
        ctx: bentoml.Context,
    ) -> dict[str, Any]:
        """The true values of an answered request, one number per instance in request order, stored once: 400 for
        an id this service did not answer, a value that is no finite number, a count that differs, or a second time."""
{%- else %}
        labels: Annotated[list[str], Field(min_length=1, max_length=MAX_INSTANCES)],
        ctx: bentoml.Context,
    ) -> dict[str, Any]:
        """The true labels of an answered request, one per instance in request order, stored once: 400 for an id
        this service did not answer, a label that is not a class, a count that differs, or a second time."""
{%- endif %}
        try:
            self.feedback_store.accept(request_id, labels)
        except FeedbackRefused as err:
            # Answered here, not raised: BentoML 1.4 sends a raised client error's body as a one-item list.
            ctx.response.status_code = 400
            return {"error": str(err)}
        return {"request_id": request_id, "stored": len(labels)}

    @bentoml.api
    def model_info(self) -> dict[str, Any]:
{%- if regression %}
        """The pinned model's tag, digest, family, task, bins and features, and the version of the Bento serving it."""
        about = {key: self.meta[key] for key in ("sha256", "family", "task", "bins", "features")}
{%- else %}
        """The pinned model's tag, digest, family, classes and features, and the version of the Bento serving it."""
        about = {key: self.meta[key] for key in ("sha256", "family", "task", "classes", "features")}
{%- endif %}
        # A release is rolled out once its endpoint reports this version (the Bento's, set when BentoML serves one).
        return {"tag": TAG, "bento_version": bentoml.server_context.bento_version, **about}


{{ service }}.add_asgi_middleware(JsonOnly, paths=("/predict", "/feedback", "/model_info"))
