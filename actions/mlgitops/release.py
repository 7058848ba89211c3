"""release: promote a packaged release to an environment, verify it there, roll back, and report each environment.

`promote` serves the release's archive (fetched from the artifact store by version, checked against its
digest: never rebuilt) in the environment through its deploy target, then verifies it: health, the
pinned model, a 400 for an invalid request, and the release's frozen reference set replayed against the
endpoint, whose served metric must equal the one measured in process at packaging (a difference is
train/serve skew) and whose predictions must not collapse onto one class. A release that fails leaves
the environment on its last known good release. Every change of state is one commit to
`releases/<environment>.yaml` (see state.py); a re-run of a finished promotion changes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import canary, contract, gha, state, store, targets
from . import markdown as md

REFERENCE_FILES = ("reference.json", "reference.csv", "reference_requests.json")
BATCH = 100
INVALID_REQUEST = {"instances": [{"a feature no model has": 1}]}


class ReleaseError(RuntimeError):
    """A release operation that cannot go ahead; the message is one sentence for the user."""


@dataclass
class Verification:
    """What verifying a release in an environment found: the checks that passed and the first failure."""

    checks: dict[str, Any] = field(default_factory=dict)
    failure: str = ""

    @property
    def passed(self) -> bool:
        return not self.failure


@dataclass
class Context:
    """Everything an operation needs: the project, its contract, the artifact store, the target and the state branch."""

    project: str
    package: str
    settings: dict[str, Any]
    store: Any
    target: targets.Target
    branch: state.StateBranch
    work: Path
    by: str = ""

    def fetch(self, version: str, digest: str | None = None) -> dict[str, Any]:
        """The release's manifest, with its archive (checked against `digest`, the one git recorded, when given)
        and its reference set fetched into the work folder."""
        manifest = self.store.manifest(version)
        folder = self.work / version
        folder.mkdir(parents=True, exist_ok=True)
        if self.target.needs_archive:
            archive = self.store.get(version, manifest["archive"], folder / manifest["archive"], digest=digest)
            manifest["archive_path"] = str(archive)
        elif digest and manifest.get("digest") != digest:
            raise ReleaseError(
                f"the store's release {version} has digest {manifest.get('digest')}, not the {digest} git recorded."
            )
        for name in REFERENCE_FILES:
            self.store.get(version, name, folder / name)
        manifest["reference_dir"] = str(folder)
        return manifest

    def port(self, environment: str) -> int:
        ports = self.settings["ports"]
        if environment not in ports and self.target.name != "local":
            return 0  # only the local target serves on a port of the runner's machine
        if environment not in ports:
            raise ReleaseError(f"mlgitops.release.ports in params.yaml names no port for {environment!r}.")
        return int(ports[environment])

    def deploy(self, environment: str, release: dict[str, Any]) -> str:
        return self.target.deploy(
            environment,
            tag=release["bento"],
            archive=Path(release["archive_path"]) if release.get("archive_path") else None,
            version=release["version"],
            port=self.port(environment),
            ready_timeout=float(self.settings["ready_seconds"]),
            image=release.get("image", ""),
        )


# --- talking to a served release ---


def verify(url: str, release: dict[str, Any], ctx: Context) -> Verification:
    """Check the release serving at `url`: health, its pinned model, input validation and its reference set."""
    found = Verification()

    def fail(reason: str) -> Verification:
        found.failure = reason
        return found

    for route in ("livez", "readyz"):
        status, _ = targets.get_json(f"{url}/{route}")
        found.checks[route] = status
        if status != 200:
            return fail(f"/{route} answered {status or 'nothing'}")
    status, info = targets.get_json(f"{url}/model_info", {})
    served_model = info.get("tag") if isinstance(info, dict) else None
    found.checks["model"] = served_model
    if status != 200 or served_model != release["model"]:
        return fail(f"the endpoint serves model {served_model!r}, not the release's {release['model']!r}")
    status, _ = targets.get_json(f"{url}/predict", INVALID_REQUEST)
    found.checks["invalid_request"] = status
    if status != 400:
        return fail(f"an invalid request got {status or 'no answer'} instead of 400")

    reference = Path(release["reference_dir"])
    instances = json.loads((reference / "reference_requests.json").read_text(encoding="utf-8"))["instances"]
    served: list[dict[str, Any]] = []
    for start in range(0, len(instances), BATCH):
        status, answer = targets.get_json(f"{url}/predict", {"instances": instances[start : start + BATCH]})
        if status != 200 or not isinstance(answer, dict):
            return fail(f"the reference set's request {start // BATCH + 1} got {status or 'no answer'}")
        if answer.get("model") != release["model"]:
            return fail(f"a prediction came from model {answer.get('model')!r}, not {release['model']!r}")
        served.extend(answer["predictions"])
    scored = score(reference, served, ctx)
    found.checks["served"] = scored
    metric = release["metric"]
    offline, value = float(metric["offline"]), float(scored["value"])
    if abs(value - offline) > float(ctx.settings["skew_tolerance"]):
        return fail(
            f"{metric['name']} served {value:.4f} on the reference set but {offline:.4f} in process at packaging "
            f"(train/serve skew beyond {ctx.settings['skew_tolerance']})"
        )
    if "spread_ratio" in scored:  # a regressor: its answers must vary as the truth does
        ratio, least = float(scored["spread_ratio"]), float(ctx.settings["min_spread_ratio"])
        if ratio < least:
            return fail(
                f"the answers to the reference set spread {ratio:.0%} as wide as the truth (at least {least:.0%})"
            )
        return found
    share, limit = float(scored["top_class_share"]), float(ctx.settings["max_majority_share"])
    if share > limit:
        return fail(f"{share:.0%} of the reference set got the same class (more than {limit:.0%})")
    return found


def score(reference: Path, served: list[dict[str, Any]], ctx: Context) -> dict[str, Any]:
    """The served predictions scored by the project's own metric definitions (its evaluate stage's)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=ctx.work, delete=False) as handle:
        json.dump(served, handle)
    command = [sys.executable, "-m", ctx.package, "score", "--reference", str(reference), "--predictions", handle.name]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ReleaseError(f"scoring the served predictions failed: {reason}")
    return json.loads(done.stdout)


# --- operations ---


def run_canary(environment: str, release: dict[str, Any], live: dict[str, Any], ctx: Context) -> canary.Canary | None:
    """Serve the candidate beside the live release of the last environment and compare them; None when not run."""
    settings = ctx.settings["canary"]
    if not settings["enabled"] or environment != ctx.settings["environments"][-1] or not live:
        return None
    if not getattr(ctx.target, "canary", False):
        # Kubernetes runs its canary in the cluster (Argo Rollouts' analysis); BentoCloud has its own.
        print(f"{environment}: no canary in CI for the {ctx.target.name} target")
        return None
    serving = ctx.target.current(environment) or {}
    if not serving.get("alive"):
        gha.annotate("warning", f"{environment}'s live release does not answer, so no canary compared the two.")
        return None
    requests = Path(release["reference_dir"]) / "reference_requests.json"
    features = list(json.loads(requests.read_text(encoding="utf-8"))["instances"][0])
    hidden = ctx.settings["monitor"]["drop"] + ctx.settings["monitor"]["hash"]
    if hidden:
        rows: list[dict[str, Any]] = []
        inputs = f"the reference set only: {', '.join(hidden)} are not logged in clear, so live rows cannot be replayed"
    else:
        rows = canary.live_inputs(ctx.target.monitoring_dir(environment), features, int(settings["live_rows"]))
        inputs = f"the reference set and the {len(rows)} newest live rows"
    where = f"{environment}-canary"
    print(f"{environment}: the candidate {release['version']} answers beside {live['version']} ({inputs})", flush=True)
    url = ctx.target.deploy(
        where,
        tag=release["bento"],
        archive=Path(release["archive_path"]),
        version=release["version"],
        port=int(settings["port"]),
        ready_timeout=float(ctx.settings["ready_seconds"]),
    )
    try:
        found = canary.compare(serving["url"], url, release, rows, settings, lambda ref, ans: score(ref, ans, ctx))
    finally:
        ctx.target.stop(where)
    found.checks["inputs"] = inputs
    return found


def describe(verified: Verification, release: dict[str, Any]) -> str:
    """One line on what verification measured."""
    served = verified.checks.get("served") or {}
    if "value" not in served:
        return "verified"
    metric = release["metric"]
    return f"verified, {metric['name']} {float(served['value']):.4f} served, {float(metric['offline']):.4f} offline"


def try_release(environment: str, release: dict[str, Any], ctx: Context) -> tuple[str, Verification]:
    """Serve and verify the release; a deploy that fails is a failed verification with the target's reason."""
    try:
        url = ctx.deploy(environment, release)
    except targets.DeployError as err:
        return "", Verification(failure=str(err))
    try:
        return url, verify(url, release, ctx)
    except ReleaseError as err:
        return url, Verification(failure=str(err))


def restore(environment: str, current: dict[str, Any], ctx: Context) -> str:
    """Serve the environment's live release again (after a failed or interrupted promotion); return a note."""
    live = current.get("live")
    if not live:
        ctx.target.stop(environment)
        return "nothing serves it (no earlier release)"
    serving = ctx.target.current(environment)
    # A target that deploys images also says which one its configuration pins: it must be the live one's too.
    pinned = serving.get("image", live.get("image")) == live.get("image") if serving else False
    if serving and serving.get("alive") and serving.get("version") == live["version"] and pinned:
        return f"{live['version']} still serves it"
    release = ctx.fetch(live["version"], live.get("digest"))
    url, verified = try_release(environment, release, ctx)
    if not verified.passed:
        return f"restoring {live['version']} failed too: {verified.failure}"
    return f"{live['version']} serves it again at {url}"


def recover(environment: str, ctx: Context) -> None:
    """Finish what a killed run left: a pending promotion is closed as interrupted and the live release restored."""
    current = ctx.branch.read(environment, ctx.branch.fetch())
    pending = current.get("pending")
    if not pending:
        return
    if getattr(ctx.target, "canary", False):  # a canary the killed run left serving
        ctx.target.stop(f"{environment}-canary")
    note = restore(environment, current, ctx)
    reason = f"the run releasing it stopped before it finished; {note}"
    gha.annotate("warning", f"{environment}: {pending['version']} was interrupted; {note}.", title="release")
    ctx.branch.update(
        environment,
        lambda s: state.closed(s, pending, "interrupted", reason, state.now(), ctx.by) if s.get("pending") else None,
        lambda _old, _new: f"Recover {environment}: the release of {pending['version']} was interrupted\n\n{reason}",
    )


def newer_release(environment: str, version: str, live: dict[str, Any], ctx: Context) -> str:
    """Why the release is superseded: a newer one is live here or went live in the environment before; else ""."""
    if live.get("version", "") > version:
        return f"{live['version']}, a newer release, is live already"
    order = ctx.settings["environments"]
    if environment in order and order.index(environment) > 0:
        before = order[order.index(environment) - 1]
        ahead = (ctx.branch.read(before).get("live") or {}).get("version", "")
        if ahead > version:
            return f"{ahead}, a newer release, went live on {before} since"
    return ""


def check_order(environment: str, release: dict[str, Any], ctx: Context) -> None:
    """A release reaches an environment only after it went live, with the same digest, in the one before it."""
    order = ctx.settings["environments"]
    if environment not in order:
        raise ReleaseError(f"{environment!r} is not one of the environments in mlgitops.release: {order}.")
    index = order.index(environment)
    if index == 0:
        return
    before = order[index - 1]
    live = ctx.branch.read(before).get("live") or {}
    if live.get("version") != release["version"] or live.get("digest") != release["digest"]:
        raise ReleaseError(
            f"{release['version']} is not live on {before} (it serves {live.get('version') or 'nothing'}), "
            f"so it cannot go to {environment}."
        )


def promote(environment: str, version: str, ctx: Context) -> int:
    """Serve the release in the environment and verify it; keep the last known good release if it fails."""
    with ctx.target.lock(environment):
        recover(environment, ctx)
        release = ctx.fetch(version)
        current = ctx.branch.read(environment)
        live = current.get("live") or {}
        if live.get("version") == version and live.get("digest") == release["digest"]:
            return already_live(environment, release, ctx)
        newer = newer_release(environment, version, live, ctx)
        if newer:
            reason = newer
            ctx.branch.update(
                environment,
                lambda s: state.closed(s, release, "superseded", reason, state.now(), ctx.by),
                lambda _old, _new: f"Skip {version} on {environment}: {reason}",
            )
            gha.add_summary(f"### {environment}: {version} skipped\n\n{reason}.")
            return 0
        check_order(environment, release, ctx)
        ctx.branch.update(
            environment,
            lambda s: state.begin(s, release, state.now(), ctx.by),
            lambda _old, _new: f"Start releasing {version} to {environment}",
        )
        print(f"{environment}: releasing {version} (live: {live.get('version') or 'nothing'})", flush=True)
        try:
            trial = run_canary(environment, release, live, ctx)
        except (targets.DeployError, ReleaseError) as err:
            trial = canary.Canary(failure=f"the canary could not compare the two: {err}")
        if trial and trial.failure:
            return stopped_by_canary(environment, release, live, trial, ctx)
        url, verified = try_release(environment, release, ctx)
        if verified.passed and trial:
            verified.checks["canary"] = trial.checks
        if verified.passed:
            line = describe(verified, release)
            ctx.branch.update(
                environment,
                lambda s: state.went_live(s, release, url, state.now(), ctx.by, verified.checks, line),
                lambda old, _new: (
                    f"Release {version} to {environment}: {line}"
                    + (f"\n\nIt replaces {old['live']['version']}." if old.get("live") else "")
                ),
            )
            gha.set_output("url", url)
            gha.add_summary(f"### ✅ {environment}: {version} is live\n\n{md.text(line)} at {url}.")
            print(f"{environment}: {version} is live at {url} ({line})")
            return 0
        reason = verified.failure
        note = restore(environment, current, ctx)
        ctx.branch.update(
            environment,
            lambda s: state.failed(s, release, reason, state.now(), ctx.by),
            lambda _old, _new: (
                f"Keep {environment} on {live.get('version') or 'nothing'}: {version} failed\n\n{reason}; {note}."
            ),
        )
        if live.get("url"):
            gha.set_output("url", live["url"])
        gha.annotate("error", f"{version} failed on {environment}: {reason}; {note}.", title="release")
        gha.add_summary(f"### ❌ {environment}: {version} failed\n\n{md.text(reason)}.\n\nRolled back: {note}.")
        return 1


def stopped_by_canary(
    environment: str, release: dict[str, Any], live: dict[str, Any], trial: canary.Canary, ctx: Context
) -> int:
    """Record that the canary stopped the release before it switched the environment (which never stopped serving)."""
    reason, version = trial.failure, release["version"]
    ctx.branch.update(
        environment,
        lambda s: state.failed(s, release, reason, state.now(), ctx.by),
        lambda _old, _new: f"Keep {environment} on {live['version']}: {version} failed its canary\n\n{reason}.",
    )
    gha.annotate("error", f"{version} did not reach {environment}: {reason}.", title="release")
    gha.add_summary(f"### ❌ {environment}: {version} stopped by the canary\n\n{md.text(reason, limit=600)}.")
    if live.get("url"):
        gha.set_output("url", live["url"])
    print(f"{environment}: {version} stopped by the canary: {reason}")
    return 1


def already_live(environment: str, release: dict[str, Any], ctx: Context) -> int:
    """A re-run of a finished promotion: no new commit; serve the release again if the target lost it."""
    serving = ctx.target.current(environment)
    if serving and serving.get("alive") and serving.get("version") == release["version"]:
        print(f"{environment}: {release['version']} is live already; nothing to do")
        gha.set_output("url", serving["url"])
        return 0
    url, verified = try_release(environment, release, ctx)
    if not verified.passed:
        gha.annotate("error", f"{release['version']} is live on {environment} but does not serve: {verified.failure}")
        return 1
    print(f"{environment}: {release['version']} was recorded live but not serving; it serves again at {url}")
    gha.set_output("url", url)
    return 0


def rollback(environment: str, version: str | None, reason: str, ctx: Context) -> int:
    """Serve an earlier release (the previous good one, or the named one) in the environment and record why."""
    with ctx.target.lock(environment):
        recover(environment, ctx)
        current = ctx.branch.read(environment)
        live = current.get("live") or {}
        to = version or state.previous_good(current)
        if not to:
            raise ReleaseError(
                f"{environment} has no earlier release that served it well; name a version to roll back to."
            )
        if to == live.get("version"):
            print(f"{environment}: {to} is live already; nothing to roll back")
            return 0
        # The digest this environment's history recorded, so a release replaced in the store is refused.
        recorded = next((h.get("digest") for h in reversed(current["history"]) if h.get("version") == to), None)
        release = ctx.fetch(to, recorded)
        url, verified = try_release(environment, release, ctx)
        if not verified.passed:
            note = restore(environment, current, ctx)
            gha.annotate("error", f"rolling {environment} back to {to} failed: {verified.failure}; {note}.")
            return 1
        why = reason or "manual rollback"
        ctx.branch.update(
            environment,
            lambda s: state.rolled_back(s, release, url, why, state.now(), ctx.by, verified.checks),
            lambda old, _new: f"Roll back {environment} from {(old.get('live') or {}).get('version')} to {to}\n\n{why}",
        )
        gha.set_output("url", url)
        gha.add_summary(f"### ↩️ {environment}: rolled back to {to}\n\n{md.text(why)}.")
        print(f"{environment}: rolled back to {to} at {url}")
        return 0


def record_failure(environment: str, version: str, reason: str, ctx: Context) -> int:
    """Record in the environment's history that a release failed before it could reach it (e.g. in packaging)."""
    release = {"version": version, "digest": None}
    with contextlib.suppress(store.StoreError):
        release["digest"] = ctx.store.manifest(version)["digest"]
    ctx.branch.update(
        environment,
        lambda s: state.failed(s, release, reason, state.now(), ctx.by),
        lambda _old, _new: f"Record that {version} never reached {environment}\n\n{reason}",
    )
    gha.add_summary(f"### ❌ {version} never reached {environment}\n\n{md.text(reason)}.")
    return 0


def status(ctx: Context) -> int:
    """Print each environment: its live release, digest, URL, and whether it answers now."""
    ctx.branch.fetch()
    rows = []
    for environment in ctx.settings["environments"]:
        current = ctx.branch.read(environment)
        live = current.get("live") or {}
        serving = ctx.target.current(environment) or {}
        answering = "yes" if serving.get("alive") and serving.get("version") == live.get("version") else "no"
        rows.append(
            [
                environment,
                f"`{live.get('version', '—')}`",
                f"`{(live.get('digest') or '—')[:19]}`",
                live.get("url", "—"),
                live.get("at", "—"),
                answering,
                f"`{current['pending']['version']}`" if current.get("pending") else "—",
            ]
        )
    table = md.table(["environment", "live", "digest", "url", "since", "answering", "pending"], rows)
    gha.add_summary(f"### Releases\n\n{table}")
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        print(table)
    return 0


# --- command line ---


def project_names(bentofile: Path = Path("bentofile.yaml")) -> tuple[str, str]:
    """The project's Bento name and its Python package, from bentofile.yaml."""
    try:
        spec = yaml.safe_load(bentofile.read_text(encoding="utf-8"))
        return str(spec["name"]), str(spec["service"]).split(".", 1)[0]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        raise ReleaseError(f"{bentofile} must name the Bento (`name`) and its service (`service`).") from None


def commit_version() -> str:
    """The release version of the checked-out commit, as the package step derives it."""
    from .package import resolve_commit, version_for

    return version_for(*resolve_commit(""))


@contextlib.contextmanager
def context(args: argparse.Namespace) -> Iterator[Context]:
    """The operation's context, with a scratch folder removed afterwards."""
    project, package = project_names()
    settings = contract.load()
    release_settings = {
        **settings["release"],
        "max_majority_share": settings["report"]["max_majority_share"],
        "min_spread_ratio": settings["report"]["min_spread_ratio"],
        "monitor": settings["monitor"],
    }
    branch = state.StateBranch(args.state_branch, args.remote)
    with tempfile.TemporaryDirectory(prefix="mlgitops-release-") as work:
        yield Context(
            project=project,
            package=package,
            settings=release_settings,
            store=store.open_store(args.store or store.default_url(), project),
            target=targets.for_release(release_settings["target"], project, release_settings, branch),
            branch=branch,
            work=Path(work),
            by=os.environ.get("GITHUB_ACTOR", ""),
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `python -m mlgitops.release {promote,rollback,record-failure,status} ...`."""
    parser = argparse.ArgumentParser(prog="python -m mlgitops.release", description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="", help="artifact store URL (default: the kit's folder on this machine)")
    parser.add_argument("--state-branch", default="main", help="branch that holds releases/ (default: main)")
    parser.add_argument("--remote", default="origin")
    commands = parser.add_subparsers(dest="command", required=True)
    promote_parser = commands.add_parser("promote", help="serve a release in an environment and verify it")
    promote_parser.add_argument("--environment", required=True)
    promote_parser.add_argument("--version", required=True)
    rollback_parser = commands.add_parser("rollback", help="serve an earlier release in an environment")
    rollback_parser.add_argument("--environment", required=True)
    rollback_parser.add_argument("--version", default="", help="default: the previous good release")
    rollback_parser.add_argument("--reason", default="")
    failure_parser = commands.add_parser("record-failure", help="record a release that failed before an environment")
    failure_parser.add_argument("--environment", required=True)
    failure_parser.add_argument("--version", default="", help="default: the checked-out commit's release version")
    failure_parser.add_argument("--reason", default="")
    commands.add_parser("status", help="print each environment's live release")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        with context(args) as ctx:
            if args.command == "promote":
                code = promote(args.environment, args.version, ctx)
            elif args.command == "rollback":
                code = rollback(args.environment, args.version or None, args.reason, ctx)
            elif args.command == "record-failure":
                version = args.version or commit_version()
                reason = args.reason or "packaging failed (see the run's log)"
                code = record_failure(args.environment, version, reason, ctx)
            else:
                code = status(ctx)
    except (ReleaseError, state.StateError, store.StoreError, targets.DeployError, contract.ContractError) as err:
        gha.annotate("error", str(err), title="release")
        print(f"error: {err}", file=sys.stderr)
        return 1
    gha.set_output("seconds", f"{time.monotonic() - started:.1f}")
    return code


if __name__ == "__main__":
    sys.exit(main())
