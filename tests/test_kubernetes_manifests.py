"""The kubernetes target's manifests, rendered and validated offline for every baked kubernetes combination.

Each overlay renders with `kubectl kustomize`; built-in kinds validate strictly against Kubernetes' own schemas
(kubernetes-validate); Argo CD, Argo Rollouts, Flux and Prometheus Operator objects with the validators their
@kubernetes-models packages ship.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from helpers import MATRIX, ROOT, matrix_id, options_context
from mlgitops import contract
from mlgitops.kubernetes_target import split_leading_comment

KUBERNETES = [options for options in MATRIX if options["deploy_target"] == "kubernetes"]
# The oldest minor the manifests are for (that of the kubectl on these machines) and the newest the package knows.
KUBERNETES_VERSIONS = ("1.32", kubernetes_validate.latest_version())
VALIDATOR = ROOT / "tests" / "k8s" / "validate_custom_resources.mjs"
ENVIRONMENTS = contract.DEFAULTS["release"]["environments"]
PROJECT = "cancer-classifier"
DIGEST = "sha256:" + "5e" * 32
# API groups of the custom resources the overlays render (the canary's Rollout and analysis, the scrape).
CUSTOM_GROUPS = ("argoproj.io/", "monitoring.coreos.com/")
# What each overlay renders: production serves through the canary, a Rollout in place of the Deployment.
KINDS = {
    "staging": {"Namespace", "Deployment", "Service", "PodDisruptionBudget", "PodMonitor"},
    "production": {"Namespace", "Rollout", "AnalysisTemplate", "Service", "PodDisruptionBudget", "PodMonitor"},
}


def overlay(project: Path, environment: str) -> Path:
    return project / "deploy" / "kubernetes" / "overlays" / environment


def kustomize(folder: Path) -> list[dict]:
    """The documents `kubectl kustomize` renders from a kustomization folder."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) must be on PATH to render the manifests"
    result = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"kubectl kustomize {folder} failed:\n{result.stderr}"
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def builtin_errors(documents: list[dict]) -> list[str]:
    """One line per document that Kubernetes' schema of a version rejects (unknown fields included)."""
    errors = []
    for version in KUBERNETES_VERSIONS:
        for document in documents:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                where = ".".join(str(part) for part in err.absolute_path) or "the document"
                errors.append(f"{version} {document['kind']} {document['metadata']['name']}: {where}: {err.message}")
            except kubernetes_validate.SchemaNotFoundError:
                errors.append(f"{version} has no schema for {document['apiVersion']} {document['kind']}")
    return errors


def custom_resource_errors(documents: list[dict]) -> list[str]:
    """One line per document that its @kubernetes-models validator rejects or that no model knows."""
    node = shutil.which("node")
    assert node, "node must be on PATH to run the Argo CD and Flux validators"
    result = subprocess.run(
        [node, str(VALIDATOR)], input=json.dumps(documents), capture_output=True, text=True, check=False
    )
    lines = result.stdout.splitlines()
    assert result.returncode in (0, 1) and not result.stderr, f"the validator crashed:\n{result.stderr}"
    assert (result.returncode == 1) == bool(lines), f"exit {result.returncode} with output {lines}"
    return lines


def controller_objects(project: Path) -> list[dict]:
    """The Argo CD and Flux objects a team applies once."""
    paths = sorted((project / "deploy").glob("argocd/*.yaml")) + sorted((project / "deploy").glob("flux/*.yaml"))
    return [yaml.safe_load(path.read_text(encoding="utf-8")) for path in paths]


def by_kind(documents: list[dict], kind: str) -> dict:
    (found,) = [document for document in documents if document["kind"] == kind]
    return found


def workload(documents: list[dict]) -> dict:
    """The Bento's pods' owner: the Deployment, or the Rollout that replaces it where the canary is on."""
    (found,) = [document for document in documents if document["kind"] in ("Deployment", "Rollout")]
    return found


def builtin(documents: list[dict]) -> list[dict]:
    return [document for document in documents if not document["apiVersion"].startswith(CUSTOM_GROUPS)]


def custom(documents: list[dict]) -> list[dict]:
    return [document for document in documents if document["apiVersion"].startswith(CUSTOM_GROUPS)]


@pytest.fixture(scope="module")
def kubernetes_project(shared_bake, churn_csv) -> Path:
    """The first kubernetes combination of the matrix, baked once: tests only read it."""
    return shared_bake(**options_context(KUBERNETES[0], churn_csv))


@pytest.mark.parametrize("options", KUBERNETES, ids=matrix_id)
def test_every_kubernetes_bake_renders_overlays_that_validate(shared_bake, churn_csv, options):
    # Given a baked kubernetes project of each combination,
    project = shared_bake(**options_context(options, churn_csv))
    assert sorted(p.name for p in (project / "deploy/kubernetes/overlays").iterdir()) == sorted(ENVIRONMENTS)
    for environment in ENVIRONMENTS:
        # when each overlay is rendered, then every built-in kind in it is valid for every version,
        # and every custom resource (the canary's Rollout and analysis, the scrape) is valid for its controller,
        documents = kustomize(overlay(project, environment))
        assert {d["kind"] for d in documents} == KINDS[environment]
        assert builtin_errors(builtin(documents)) == []
        assert custom_resource_errors(custom(documents)) == []
    # and the Argo CD and Flux objects are valid custom resources.
    objects = controller_objects(project)
    assert sorted(d["kind"] for d in objects) == ["Application", "Application", "GitRepository"] + ["Kustomization"] * 2
    assert custom_resource_errors(objects) == []


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_rendered_deployment_runs_the_overlay_image_probed_on_its_port(kubernetes_project, environment):
    # Given an overlay as generated,
    images = yaml.safe_load((overlay(kubernetes_project, environment) / "kustomization.yaml").read_text())["images"]
    (entry,) = [image for image in images if image["name"] == PROJECT]
    assert entry == {"name": PROJECT, "newName": f"ghcr.io/your-name/{PROJECT}", "newTag": "unreleased"}
    # when it is rendered,
    documents = kustomize(overlay(kubernetes_project, environment))
    deployment = workload(documents)
    # then the workload runs the image the overlay names, in the environment's namespace,
    assert deployment["metadata"]["namespace"] == by_kind(documents, "Namespace")["metadata"]["name"]
    assert deployment["metadata"]["namespace"] == f"{PROJECT}-{environment}"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"ghcr.io/your-name/{PROJECT}:unreleased"
    # and is ready on /readyz and alive on /livez of the port BentoML serves on, the one the Service targets.
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 3000}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/livez"), ("startupProbe", "/livez")):
        assert container[probe]["httpGet"]["path"] == path
        assert ports[container[probe]["httpGet"]["port"]] == 3000
    (service_port,) = by_kind(documents, "Service")["spec"]["ports"]
    assert ports[service_port["targetPort"]] == 3000
    assert deployment["spec"]["replicas"] == {"staging": 2, "production": 3}[environment]


def test_overlays_and_controllers_name_the_repository_answered(fast_bake):
    # Given a repository whose owner has capitals (GitHub's names are case-insensitive, image names are not),
    project = fast_bake(deploy_target="kubernetes", github_repository="Octo-Org/cancer-classifier")
    # then the image is the lowercased repository on GHCR, and Argo CD and Flux fetch the repository as answered.
    for environment in ENVIRONMENTS:
        deployment = workload(kustomize(overlay(project, environment)))
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == "ghcr.io/octo-org/cancer-classifier:unreleased"
    urls = {d["spec"]["source"]["repoURL"] for d in controller_objects(project) if d["kind"] == "Application"}
    urls |= {d["spec"]["url"] for d in controller_objects(project) if d["kind"] == "GitRepository"}
    assert urls == {"https://github.com/Octo-Org/cancer-classifier.git"}


def pin_like_a_release(path: Path, repository: str, digest: str) -> None:
    """Rewrite the overlay's image entry the way the release workflow does: PyYAML, leading comments kept."""
    comment, body = split_leading_comment(path.read_text(encoding="utf-8"))
    document = yaml.safe_load(body)
    (entry,) = [image for image in document["images"] if image["name"] == PROJECT]
    entry.pop("newTag")
    entry.update(newName=repository, digest=digest)
    path.write_text(comment + yaml.safe_dump(document, sort_keys=False, width=100), encoding="utf-8")


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_a_release_rewriting_the_overlay_pins_the_image_by_digest(kubernetes_project, tmp_path, environment):
    # Given an overlay as generated, rewritten the way a release pins its image,
    deploy = shutil.copytree(kubernetes_project / "deploy", tmp_path / "deploy")
    path = deploy / "kubernetes" / "overlays" / environment / "kustomization.yaml"
    before = path.read_text(encoding="utf-8")
    pin_like_a_release(path, "ghcr.io/octo/cancer-classifier", DIGEST)
    # then the workload runs exactly that digest, with no tag,
    deployment = workload(kustomize(path.parent))
    assert (
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"ghcr.io/octo/cancer-classifier@{DIGEST}"
    )
    assert builtin_errors(builtin([deployment])) == []
    assert custom_resource_errors(custom([deployment])) == []
    # and the release's commit changes only the image lines: the comment block and every setting stay as written.
    after = path.read_text(encoding="utf-8")
    assert split_leading_comment(after)[0] == split_leading_comment(before)[0]
    changed = set(before.splitlines()) ^ set(after.splitlines())
    assert changed == {
        "  newName: ghcr.io/your-name/cancer-classifier",
        "  newTag: unreleased",
        "  newName: ghcr.io/octo/cancer-classifier",
        f"  digest: {DIGEST}",
    }


def test_the_builtin_validation_rejects_a_bad_deployment(kubernetes_project):
    # Given the rendered Deployment with replicas as a string, and one with a misspelt field,
    deployment = by_kind(kustomize(overlay(kubernetes_project, "staging")), "Deployment")
    string_replicas = {**deployment, "spec": {**deployment["spec"], "replicas": "2"}}
    misspelt = json.loads(json.dumps(deployment))
    container = misspelt["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    # then each is rejected, for every version, naming the field.
    errors = builtin_errors([string_replicas, misspelt])
    assert len(errors) == 2 * len(KUBERNETES_VERSIONS)
    assert all("spec.replicas: '2' is not of type 'integer'" in e for e in errors[0::2]), errors
    assert all("'readinesProbe' was unexpected" in e for e in errors[1::2]), errors


def test_the_builtin_validation_rejects_a_kind_kubernetes_does_not_have(kubernetes_project):
    application = controller_objects(kubernetes_project)[0]
    assert builtin_errors([application])[0].endswith("has no schema for argoproj.io/v1alpha1 Application")


def test_the_custom_resource_validation_rejects_bad_and_unknown_objects(kubernetes_project):
    # Given an Application without its destination, a Flux Kustomization whose `prune` is a string, a kind no
    # installed package models, and a valid GitRepository,
    objects = {d["kind"]: d for d in controller_objects(kubernetes_project)}
    application = json.loads(json.dumps(objects["Application"]))
    del application["spec"]["destination"]
    kustomization = json.loads(json.dumps(objects["Kustomization"]))
    kustomization["spec"]["prune"] = "yes"
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": PROJECT}}
    # and a canary Rollout whose step weight is a string, and an analysis metric without its provider,
    production = kustomize(overlay(kubernetes_project, "production"))
    rollout = json.loads(json.dumps(by_kind(production, "Rollout")))
    rollout["spec"]["strategy"]["canary"]["steps"][0]["setWeight"] = "34"
    analysis = json.loads(json.dumps(by_kind(production, "AnalysisTemplate")))
    del analysis["spec"]["metrics"][0]["provider"]
    # when they are validated together,
    errors = custom_resource_errors([application, kustomization, widget, objects["GitRepository"], rollout, analysis])
    # then each bad one gets one line saying why, and the valid one none.
    assert errors == [
        f"document 1 (Application {PROJECT}-staging): data/spec must have required property destination",
        f"document 2 (Kustomization {PROJECT}-staging): data/spec/prune must be boolean",
        f"document 3 (Widget {PROJECT}): no installed model knows apiVersion example.com/v1 kind Widget",
        f"document 5 (Rollout {PROJECT}): data/spec/strategy/canary/steps/0/setWeight must be integer",
        f"document 6 (AnalysisTemplate {PROJECT}-canary): data/spec/metrics/0 must have required property provider",
    ]


def test_production_reaches_a_new_release_through_a_canary_whose_analysis_is_guarded(kubernetes_project):
    # Given production's rendered manifests,
    documents = kustomize(overlay(kubernetes_project, "production"))
    rollout, analysis = by_kind(documents, "Rollout"), by_kind(documents, "AnalysisTemplate")
    # then one pod of a new release serves first, and the analysis runs before the rest follow,
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    assert steps[0] == {"setWeight": 34} and len(steps) == 2
    step = steps[1]["analysis"]
    assert [t["templateName"] for t in step["templates"]] == [analysis["metadata"]["name"]]
    assert analysis["metadata"]["namespace"] == rollout["metadata"]["namespace"]
    # with every argument the template declares, the canary's pods told apart by their template hash,
    assert sorted(a["name"] for a in step["args"]) == sorted(a["name"] for a in analysis["spec"]["args"])
    assert {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}} in step["args"]
    # the label the scrape copies from the pods, on the counters the served model and BentoML expose.
    relabel = by_kind(documents, "PodMonitor")["spec"]["podMetricsEndpoints"][0]["relabelings"]
    assert relabel[0]["targetLabel"] == "rollouts_pod_template_hash"
    metrics = {metric["name"]: metric for metric in analysis["spec"]["metrics"]}
    assert "mlgitops_predictions_total" in metrics["top-class-share"]["provider"]["prometheus"]["query"]
    assert "bentoml_service_request_total" in metrics["error-rate"]["provider"]["prometheus"]["query"]
    # Each measurement passes or fails only on a number: an empty or NaN result (no traffic yet) is neither,
    # and the limits are the ones params.yaml gives the report and the monitor.
    guard = "len(result) > 0 && !isNaN(result[0])"
    limits = {
        "top-class-share": contract.DEFAULTS["report"]["max_majority_share"],
        "error-rate": contract.DEFAULTS["watch"]["max_error_rate"],
    }
    for name, limit in limits.items():
        assert metrics[name]["successCondition"] == f"{guard} && result[0] <= {limit}"
        assert metrics[name]["failureCondition"] == f"{guard} && result[0] > {limit}"
        # and too little traffic to judge filters the result away, which is inconclusive too.
        assert "> 20)" in metrics[name]["provider"]["prometheus"]["query"]
    params = yaml.safe_load((kubernetes_project / "params.yaml").read_text())["mlgitops"]
    assert params["report"]["max_majority_share"] == limits["top-class-share"]
    assert params["watch"]["max_error_rate"] == limits["error-rate"]
