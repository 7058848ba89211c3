"""A regression project baked from its task's defaults, released by the generated workflows under act: staging and
production serve the packaged model's numbers, and the next release passes the canary, which compares the two
releases' answers by the decile bin of the training target each falls in.
"""

from __future__ import annotations

import json

import pytest

from act_world import set_param
from demo import first_test_instance, sh
from release_world import make_release_world, release_json

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def release_world(tmp_path_factory):
    with make_release_world(tmp_path_factory.mktemp("regression-release"), task="regression") as world:
        yield world


def test_merges_go_live_with_the_packaged_numbers_and_the_canary_compares_their_bins(release_world):
    world = release_world
    # Given a first release on both environments
    world.merge(set_param("  alpha: 1.0", "  alpha: 0.5"), "Regularise less")
    first = world.release()
    assert first.returncode == 0, first.log[-6000:]
    production = world.state("production")["live"]
    manifest = release_json(world, production["version"])
    assert manifest["metric"]["name"] == "rmse" and manifest["metric"]["higher_is_better"] is False
    assert manifest["smoke"]["spread_ratio"] >= manifest["smoke"]["min_spread_ratio"] == 0.1
    # the served numbers are the pipeline's model's, in process
    instance = first_test_instance(world.project, world.world.env)
    [answer] = world.predict("production", [instance])["predictions"]
    code = (
        "import json, sys, joblib, pandas as pd\n"
        "model = joblib.load('models/model.joblib')\n"
        "print(round(float(model.predict(pd.DataFrame([json.loads(sys.argv[1])]))[0]), 6))\n"
    )
    assert answer["value"] == float(sh(["python", "-c", code, json.dumps(instance)], world.project, world.world.env))

    # When a second merge is released, the canary compares it with production by the answers' decile bins
    world.merge(set_param("  alpha: 0.5", "  alpha: 0.8"), "Regularise a little more")
    second = world.release()
    assert second.returncode == 0, second.log[-6000:]
    live = world.state("production")["live"]
    assert live["version"] > production["version"]
    canary = live["verified"]["canary"]
    assert canary["agreement"] >= 0.9 and canary["psi"] <= 0.25 and canary["metric"] == "rmse"
    assert canary["reference_rows"] == manifest["reference"]["rows"]
