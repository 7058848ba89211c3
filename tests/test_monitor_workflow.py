"""The generated Model monitor workflow, run for real by act on a baked project released with the `local` target.

One world for the module, in the order a team would live it: two releases go live; with no user traffic
the monitor says "no evidence"; healthy traffic passes without an issue; a broken upstream that sends one
feature constant makes production answer one class for everyone: the monitor fails naming both, opens the
issue and (auto-rollback on) asks for the Rollback workflow, which the test then runs as GitHub would;
healthy traffic on the release rolled back to closes the issue. Last, a merge that answers unlike
production passes staging but is stopped by the canary before production switches.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest

from act_world import OWNER, set_param
from release_world import make_release_world

pytestmark = pytest.mark.slow

# The feature a broken upstream sends constant, at a value far outside the training data.
BROKEN_FEATURE = "mean area"
BROKEN_VALUE = 100_000.0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with make_release_world(tmp_path_factory.mktemp("monitor")) as world:
        first = world.release()
        assert first.returncode == 0, first.log[-6000:]
        world.merge(set_param("  C: 1.0", "  C: 0.8"), "Regularise a little more")
        second = world.release()
        assert second.returncode == 0, second.log[-6000:]
        yield world


def user_rows(world) -> list[dict]:
    """The project's test split as request instances (the target left out)."""
    with (world.project / "data/prepared/test.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: float(v) for k, v in row.items() if k != "target"} for row in rows]


def true_labels(world) -> list[str]:
    """The test split's labels, in the order of user_rows."""
    with (world.project / "data/prepared/test.csv").open(newline="", encoding="utf-8") as handle:
        return [row["target"] for row in csv.DictReader(handle)]


def send(world, environment: str, rows: list[dict], requests: int = 60, per_request: int = 10) -> None:
    """User traffic: `requests` requests of `per_request` instances each, cycling through the rows."""
    cycle = itertools.cycle(rows)
    for _ in range(requests):
        world.predict(environment, [next(cycle) for _ in range(per_request)])


def issues(world) -> list[dict]:
    return world.world.github.issues(OWNER, world.project.name)


def test_with_no_user_traffic_the_monitor_says_no_evidence_and_opens_nothing(world):
    # Given two releases whose verification sent the reference set to both environments, and no user
    # When the monitor runs
    run = world.monitor()
    # Then the verification's requests were no evidence of use: nothing is judged healthy, nothing opened
    assert run.returncode == 0, run.log[-6000:]
    assert "Model monitor: production is no evidence" in run.log
    assert "Model monitor: staging is no evidence" in run.log
    assert issues(world) == []


def test_healthy_traffic_passes_and_opens_no_issue(world):
    send(world, "production", user_rows(world))
    # Users send the true labels of 100 answers later, through /feedback.
    rows, labels = user_rows(world), true_labels(world)
    for start in range(0, 100, 10):
        answer = world.ask("production", "predict", {"instances": rows[start : start + 10]})
        world.ask("production", "feedback", {"request_id": answer["request_id"], "labels": labels[start : start + 10]})

    run = world.monitor()

    assert run.returncode == 0, run.log[-6000:]
    assert "Model monitor: production is healthy" in run.log
    # The live metric on the labelled answers, scored by the project's own evaluate stage, holds.
    rows = [line for line in run.log.splitlines() if "| live metric (feedback) |" in line]
    assert any("| f1_macro 0." in row and "| ✅ |" in row for row in rows), rows
    assert issues(world) == []


def test_a_constant_feature_fails_the_monitor_opens_the_issue_and_rollback_follows(world):
    # Given auto-rollback after one failing window, and a broken upstream sending one feature constant
    world.merge(set_param("    rollback_after: 0", "    rollback_after: 1"), "Roll back after one failing window")
    before = world.state("production")["live"]["version"]
    broken = [{**row, BROKEN_FEATURE: BROKEN_VALUE} for row in user_rows(world)]
    # ... for long enough that its requests make nearly the whole window (15,000 predictions against 600 healthy ones)
    send(world, "production", broken, requests=150, per_request=100)

    # When the monitor runs
    run = world.monitor()

    # Then it fails naming the top class share and the drifted feature, in one issue for production
    assert run.returncode != 0
    assert "Model monitor: production is failing" in run.log
    [issue] = issues(world)
    assert issue["title"] == "Model monitor: production" and issue["state"] == "open"
    assert "top class share" in issue["body"] and f"`{BROKEN_FEATURE}`" in issue["body"]
    # ... and the second job asked GitHub for the Rollback workflow of production
    [dispatch] = world.world.github.dispatches
    assert dispatch["workflow"] == "rollback.yml" and dispatch["ref"] == "main"
    assert dispatch["inputs"]["environment"] == "production"
    assert "failing 1 windows in a row" in dispatch["inputs"]["reason"]

    # When GitHub runs the dispatched workflow (act cannot chain workflows: the test runs it with the same inputs)
    rolled = world.rollback("production", dispatch["inputs"]["version"], dispatch["inputs"]["reason"])

    # Then production serves the release before, recorded as a commit that says why
    assert rolled.returncode == 0, rolled.log[-6000:]
    live = world.state("production")["live"]
    assert live["version"] != before
    assert world.commits()[0].startswith(f"Roll back production from {before} to {live['version']}")


def test_recovery_updates_and_closes_the_issue(world):
    # Given the issue the failing window opened, and production on the release rolled back to
    [opened] = issues(world)
    assert opened["state"] == "open"
    # When users' healthy traffic reaches it and the monitor runs
    send(world, "production", user_rows(world))
    run = world.monitor()
    # Then the same issue is updated and closed
    assert run.returncode == 0, run.log[-6000:]
    [issue] = issues(world)
    assert issue["number"] == opened["number"] and issue["state"] == "closed"
    assert "is healthy" in issue["body"]
    assert len(world.world.github.dispatches) == 1


def test_a_candidate_that_disagrees_with_production_is_stopped_by_the_canary(world):
    # Given users' traffic on production, and a merge regularising the model so hard that it answers differently
    send(world, "production", user_rows(world))
    before = world.state("production")["live"]["version"]
    world.merge(set_param("  C: 0.8", "  C: 0.0003"), "Regularise very hard")

    # When it is released
    run = world.release()

    # Then staging takes it (its metric served equals its metric measured), but the canary stops it before production
    assert run.returncode != 0
    candidate = world.state("staging")["live"]["version"]
    production = world.state("production")
    assert production["live"]["version"] == before != candidate
    failed = production["history"][-1]
    assert (failed["version"], failed["outcome"]) == (candidate, "failed")
    assert "the canary agreed with the live release on" in failed["reason"]
    assert "without a gain on the reference set" in failed["reason"]
    assert world.commits()[0] == f"Keep production on {before}: {candidate} failed its canary"


def test_monitor_logs_live_in_each_environment_folder(world):
    logs = Path(world.home) / world.project.name / "production" / "monitoring" / "predictions" / "data"
    assert list(logs.glob("data.*.log*")), f"no prediction log under {logs}"
    assert not list(Path(world.home).glob(f"{world.project.name}/staging/monitoring/predictions/data/*.log*"))
