"""The generated release and rollback workflows, run for real by act on a baked project with the `local` target.

One world per module: each scenario merges onto main as it stands and states what it expects relative to
the state before it, so any one of them also passes alone (the first release happens where one is needed).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from act_world import set_param
from demo import first_test_instance, sh
from release_world import ENVIRONMENTS, make_release_world, release_json

pytestmark = pytest.mark.slow

# Code a merge can bring that the pull request's checks would not catch: it misbehaves only in production.
SERVE_LINE = (
    "        return Predictions(model=TAG, predictions=predictions(self.classes, self.probabilities(instances)))\n"
)
PRODUCTION_ONLY_BUG = (
    "        probabilities = self.probabilities(instances)\n"
    '        if os.environ.get("MLGITOPS_ENVIRONMENT") == "production":\n'
    "            probabilities = probabilities[:, ::-1]\n"
    "        return Predictions(model=TAG, predictions=predictions(self.classes, probabilities))\n"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with make_release_world(tmp_path_factory.mktemp("release")) as world:
        yield world


def live(world, environment: str) -> dict:
    return world.state(environment)["live"] or {}


def ensure_released(world) -> str:
    """The version live on production, releasing main first if nothing was ever released."""
    if not live(world, "production"):
        run = world.release()
        assert run.returncode == 0, run.log[-6000:]
    return live(world, "production")["version"]


def edit_service(old: str, new: str):
    def change(project: Path) -> None:
        service = next((project / "src").glob("*/service.py"))
        text = service.read_text(encoding="utf-8")
        assert old in text
        service.write_text(text.replace(old, new), encoding="utf-8")

    return change


def in_process_probabilities(world, instance: dict) -> dict:
    """The probabilities main's reproduced model gives the instance in process, outside any Bento."""
    code = (
        "import json, sys, joblib, pandas as pd\n"
        "model = joblib.load('models/model.joblib')\n"
        "row = pd.DataFrame([json.loads(sys.argv[1])])\n"
        "print(json.dumps(dict(zip(map(str, model.classes_), model.predict_proba(row)[0].round(6).tolist()))))\n"
    )
    return json.loads(sh(["python", "-c", code, json.dumps(instance)], world.project, world.world.env))


def test_a_merge_goes_live_on_staging_and_production_with_one_digest_and_the_packaged_model(world):
    commit = world.merge(set_param("  C: 1.0", "  C: 0.8"), "Regularise a little more")

    run = world.release()

    assert run.returncode == 0, run.log[-6000:]
    staging, production = live(world, "staging"), live(world, "production")
    assert staging["digest"] == production["digest"] and production["digest"].startswith("sha256:")
    assert production["commit"] == commit
    manifest = release_json(world, production["version"])
    assert manifest["digest"] == production["digest"]
    assert f"Release {production['version']} to production: verified" in "\n".join(world.commits())
    # The served model is the packaged one: same tag, same answers as the pipeline's model at that commit.
    instance = first_test_instance(world.project, world.world.env)
    answer = world.predict("production", [instance])
    assert answer["model"] == manifest["model"]
    assert answer["predictions"][0]["probabilities"] == in_process_probabilities(world, instance)
    # The archive is attested and kept as a GitHub Release asset.
    assert manifest["digest"] in world.attestations.read_text(encoding="utf-8")
    releases = world.world.github.releases("octo", world.project.name)
    assert any(asset["name"] == manifest["archive"] for r in releases for asset in r["assets"])
    print(f"merge to production: {run.seconds:.1f} s")


def test_a_second_good_merge_replaces_the_first_and_history_shows_both(world):
    first = ensure_released(world)
    world.merge(set_param("  max_iter: 1000", "  max_iter: 1200"), "More iterations")

    run = world.release()

    assert run.returncode == 0, run.log[-6000:]
    second = live(world, "production")["version"]
    assert second > first
    for environment in ENVIRONMENTS:
        history = world.history(environment)
        assert (first, "replaced") in history and history[-1] == (second, "live")


def test_re_running_a_finished_release_makes_no_commit(world):
    ensure_released(world)
    before = world.commits()

    run = world.release()

    assert run.returncode == 0, run.log[-6000:]
    assert world.commits() == before
    assert "is live already; nothing to do" in run.log


def test_a_degenerate_model_never_leaves_packaging_and_the_failure_is_recorded(world):
    version = ensure_released(world)
    merged = world.merge(set_param("  C: ", "  C: 0.000001  # was "), "Regularise everything away")

    run = world.release()

    assert run.returncode != 0
    assert live(world, "production")["version"] == version
    assert live(world, "staging")["version"] == version
    failed = world.state("staging")["history"][-1]
    assert failed["outcome"] == "failed" and "a degenerate model is not released" in failed["reason"]
    world.revert(merged)


def test_staging_verifies_but_production_fails_and_rolls_back(world):
    version = ensure_released(world)
    instance = first_test_instance(world.project, world.world.env)
    before = world.predict("production", [instance])
    merged = world.merge(edit_service(SERVE_LINE, PRODUCTION_ONLY_BUG), "Change how predictions are returned")

    run = world.release()

    assert run.returncode != 0
    new = live(world, "staging")["version"]
    assert new != version, "staging verified the new release"
    assert live(world, "production")["version"] == version
    failed = world.state("production")["history"][-1]
    assert (failed["version"], failed["outcome"]) == (new, "failed")
    assert "train/serve skew" in failed["reason"]
    assert world.predict("production", [instance]) == before, "production answers as it did before the merge"
    world.revert(merged)


def test_manual_rollback_to_a_named_version_serves_that_versions_model(world):
    first = ensure_released(world)
    instance = first_test_instance(world.project, world.world.env)
    answer_first = world.predict("production", [instance])
    merged = world.merge(set_param("  C: ", "  C: 0.05  # was "), "A much more regularised model")
    assert world.release().returncode == 0
    assert world.predict("production", [instance])["predictions"] != answer_first["predictions"]

    run = world.rollback("production", first, "the new model confuses support")

    assert run.returncode == 0, run.log[-6000:]
    assert live(world, "production")["version"] == first
    answer = world.predict("production", [instance])
    assert answer == answer_first, "the rolled-back environment answers exactly as that release did"
    assert world.history("production")[-1] == (first, "live")
    assert re.match(rf"Roll back production from \S+ to {first}", world.commits()[0])
    print(f"rollback: {run.seconds:.1f} s")
    world.revert(merged)


def test_a_release_killed_mid_promotion_is_recovered_by_the_next_run(world):
    ensure_released(world)
    commit = world.merge(set_param("  max_iter: ", "  max_iter: 1400  # was "), "Yet another model")
    killed = world.release_in_background(commit)
    killed.wait_for(re.compile(r"staging: releasing \S+"))
    killed.cancel()

    run = world.release(commit)

    assert run.returncode == 0, run.log[-6000:]
    assert world.state("staging")["pending"] is None
    assert live(world, "production")["commit"] == commit
    outcomes = {outcome for _, outcome in world.history("staging")}
    assert outcomes <= {"live", "replaced", "failed", "rolled-back", "interrupted", "superseded"}


def test_two_merges_released_at_once_are_serialised_and_both_recorded(world):
    ensure_released(world)
    first = world.merge(set_param("  max_iter: ", "  max_iter: 1500  # was "), "Model A")
    second = world.merge(set_param("  max_iter: ", "  max_iter: 1600  # was "), "Model B")
    runs = [world.release_in_background(first), world.release_in_background(second, runner="second")]
    codes = [run.process.wait(timeout=1500) for run in runs]

    assert codes == [0, 0], [run.log.read_text()[-3000:] for run in runs]
    assert live(world, "production")["commit"] == second
    versions = {json.loads(p.read_text())["commit"]: p.parent.name for p in world.store.rglob("release.json")}
    history = world.history("production")
    assert history[-1] == (versions[second], "live")
    assert versions[first] in {version for version, _ in history}, "the first merge is recorded too"
    subprocess.run(["git", "--git-dir", str(world.origin), "fsck", "--no-progress"], check=True)
