"""Schemathesis checks for fuzzing the served Bento: a refused request must say why, in JSON."""

import schemathesis

# Answers about the HTTP exchange itself (wrong method, media type) come from the server, not the service.
PROTOCOL_ERRORS = {405, 406, 415}


@schemathesis.check
def client_errors_explain_themselves(ctx, response, case):
    """An invalid request gets 400 with a JSON body whose 'error' names the problem (not a stack trace or HTML)."""
    if 400 <= response.status_code < 500 and response.status_code not in PROTOCOL_ERRORS:
        assert response.status_code == 400, f"expected 400 for an invalid request, got {response.status_code}"
        body = response.json()
        assert isinstance(body, dict) and str(body.get("error", "")).strip(), f"no readable error in {body!r}"
        assert "Traceback" not in response.text


@schemathesis.check
def schema_valid_predictions_are_accepted(ctx, response, case):
    """A /predict body that the published schema allows (declared categories, nulls where nullable) gets 200."""
    # Requests without a body are left out: BentoML's description does not mark the body as required.
    if case.meta is None or not case.meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return
    if case.path == "/predict":
        assert response.status_code == 200, f"a schema-valid request was refused: {response.text[:500]}"
