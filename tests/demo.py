"""Bake, reproduce, build, serve and query a project: the helpers the end-to-end tests share, and `make demo`."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]


def project_env(project: Path, bentoml_home: Path) -> dict[str, str]:
    """Environment for a baked project's commands: its package importable, BentoML state kept in bentoml_home."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = str(project / "src")
    env["BENTOML_HOME"] = str(bentoml_home)
    env["BENTOML_DO_NOT_TRACK"] = "true"
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def bake(output_dir: Path, **answers: object) -> Path:
    """Generate a project from the template with the given answers (defaults otherwise); return its folder."""
    return Path(cookiecutter(str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(output_dir)))


def sh(cmd: Sequence[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    """Run a command in a project; raise with its whole output when it fails."""
    result = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise AssertionError(f"`{' '.join(cmd)}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def build_bento(project: Path, env: dict[str, str]) -> str:
    """Register the model and `bentoml build` the project, as `make bento` does; return the Bento's tag."""
    sh(["python", "-m", project.name.replace("-", "_"), "register"], project, env)
    out = sh(["bentoml", "build", "--output", "tag"], project, env)
    return out.strip().splitlines()[-1].removeprefix("__tag__:")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, payload: object, timeout: float = 30) -> tuple[int, dict]:
    """POST JSON and return the status code and the decoded JSON answer, for errors too."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@contextlib.contextmanager
def serve(target: str, cwd: Path, env: dict[str, str], ready_within: float = 120) -> Iterator[str]:
    """Serve a Bento (or service) on 127.0.0.1, wait for /readyz, yield its base URL, then stop it."""
    port = free_port()
    log = cwd / f"serve-{port}.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            ["bentoml", "serve", target, "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_within
        while True:
            if server.poll() is not None:
                raise AssertionError(f"bentoml serve exited {server.returncode}:\n{log.read_text()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"bentoml serve was not ready within {ready_within} s:\n{log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, 15)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()


def first_test_instance(project: Path, env: dict[str, str]) -> dict[str, object]:
    """The project's own example request (the first test row, as the service expects it), unwrapped."""
    package = project.name.replace("-", "_")
    return json.loads(sh(["python", "-m", package, "example"], project, env))["instances"][0]


def demo(output: Path) -> int:
    """Bake the default project, show its metrics, build its Bento, serve it and print one prediction."""
    if output.exists():
        print(f"replacing the previous demo in {output}/")
        shutil.rmtree(output)
    output.mkdir(parents=True)
    started = time.perf_counter()
    project = bake(output)
    print(f"baked {project} (pipeline reproduced) in {time.perf_counter() - started:.1f} s")
    env = project_env(project, output / "bentoml")
    print(sh(["git", "log", "--oneline"], project, env).strip())
    print(sh(["dvc", "metrics", "show"], project, env).rstrip())
    tag = build_bento(project, env)
    print(f"built Bento {tag}")
    # Serve the built Bento, not the source tree: the Bento must carry its own code and model.
    serve_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    with serve(tag, output, serve_env) as url:
        instance = first_test_instance(project, env)
        status, answer = post(f"{url}/predict", {"instances": [instance]})
        print(f"POST {url}/predict -> {status}\n{json.dumps(answer, indent=2)}")
        bad_status, bad_answer = post(f"{url}/predict", {"instances": [{"no such feature": 1}]})
        print(f"an invalid request -> {bad_status}: {bad_answer.get('error')}")
    report = pull_request_report(project, env)
    print(f"\n--- the model report of a pull request that sets model.C to 0.3 ---\n\n{report}")
    released = release_and_roll_back(project, env, output)
    pictures(report, output / "report")
    return 0 if status == 200 and bad_status == 400 and released else 1


def pictures(report: str, folder: Path) -> None:
    """The pull request's report as GitHub shows it: an HTML page, and its screenshot where Chromium is installed."""
    import report_page

    print("\n--- the pull request's report as GitHub shows it ---")
    page = report_page.write_page(report, folder, title="Model report: tune-c")
    print(f"page: {page} (open it in a browser; it needs no network)")
    if report_page.chromium() is None:
        print("no screenshot: Chromium is not installed (Debian's package `chromium`; `make test` installs it)")
        return
    print(f"screenshot, by headless Chromium: {report_page.screenshot(page, folder / 'report.png')}")


def pull_request_report(project: Path, env: dict[str, str]) -> str:
    """Change a parameter on a branch and build its model report with the actions' own modules."""
    git = ["git", "-c", "user.name=Demo", "-c", "user.email=demo@example.com"]
    sh([*git, "checkout", "-q", "-b", "tune-c"], project, env)
    params = project / "params.yaml"
    params.write_text(params.read_text(encoding="utf-8").replace("  C: 1.0", "  C: 0.3"), encoding="utf-8")
    sh([*git, "commit", "-qam", "Lower regularisation"], project, env)
    actions_env = {**env, "PYTHONPATH": os.pathsep.join([str(TEMPLATE / "actions"), str(project / "src")])}
    for module, *args in (
        ("mlgitops.data_check", "--base-ref", "main"),
        ("mlgitops.train", "--base-ref", "main"),
        ("mlgitops.model_report", "--base-ref", "main", "--head-label", "tune-c"),
    ):
        subprocess.run([sys.executable, "-m", module, *args], cwd=project, env=actions_env, capture_output=True)
    return (project / "reports" / "pr" / "model_report.md").read_text(encoding="utf-8")


def kit(project: Path, env: dict[str, str], module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run one of the kit's actions in the project, as its workflow step would; print what it says."""
    actions_env = {**env, "PYTHONPATH": os.pathsep.join([str(TEMPLATE / "actions"), str(project / "src")])}
    done = subprocess.run(
        [sys.executable, "-m", f"mlgitops.{module}", *args],
        cwd=project,
        env=actions_env,
        capture_output=True,
        text=True,
    )
    for line in (done.stdout + done.stderr).splitlines():
        if line.startswith(("error:", "staging:", "production:", "::error", "::warning")):
            print(f"  {line}")
    return done


def call_like_users(project: Path, requests: int, per_request: int = 10) -> int:
    """Send production requests made of the test split's rows, as users would; the number of predictions."""
    features = [f["name"] for f in json.loads((project / "models" / "model.json").read_text())["features"]]
    with (project / "data" / "prepared" / "test.csv").open(newline="", encoding="utf-8") as handle:
        rows = [{name: float(row[name]) for name in features} for row in csv.DictReader(handle)]
    live = yaml.safe_load((project / "releases" / "production.yaml").read_text(encoding="utf-8"))["live"]
    for number in range(requests):
        batch = [rows[(number * per_request + i) % len(rows)] for i in range(per_request)]
        status, answer = post(f"{live['url']}/predict", {"instances": batch})
        if status != 200:
            raise AssertionError(f"production answered {status}: {answer}")
    return requests * per_request


def release_and_roll_back(project: Path, env: dict[str, str], output: Path) -> bool:
    """Release main to staging and production, merge the tuned model and release it, then roll production back."""
    # `make demo` runs this file as a script: the kit's package is importable only once its folder is on the path.
    if str(TEMPLATE / "actions") not in sys.path:
        sys.path.insert(0, str(TEMPLATE / "actions"))
    from mlgitops.local_target import LocalTarget

    git = ["git", "-c", "user.name=Demo", "-c", "user.email=demo@example.com"]
    origin, store = output / "origin.git", output / "store"
    sh(["git", "init", "-q", "--bare", "-b", "main", str(origin)], output, env)
    # The pull request's branch keeps the results its report reproduced, as its author would commit them.
    subprocess.run([*git, "commit", "-qam", "Reproduce the tuned model"], cwd=project, env=env, capture_output=True)
    sh(["git", "checkout", "-q", "main"], project, env)
    sh(["git", "remote", "add", "origin", str(origin)], project, env)
    env = {**env, "MLGITOPS_HOME": str(output / "serving")}
    params = project / "params.yaml"
    text = params.read_text(encoding="utf-8")
    for name, port in (("staging", 3001), ("production", 3000)):
        text = text.replace(f"      {name}: {port}\n", f"      {name}: {free_port()}\n")
    text = text.replace("      port: 3002\n", f"      port: {free_port()}\n")  # the canary's
    params.write_text(text, encoding="utf-8")
    sh([*git, "commit", "-qam", "Serve staging and production on free ports"], project, env)

    def release() -> str:
        sh(["git", "push", "-q", "origin", "main"], project, env)
        started = time.perf_counter()
        packaged = kit(project, env, "package", "--store", str(store), "--out", str(output / "package"))
        if packaged.returncode != 0:
            raise AssertionError(f"packaging failed:\n{packaged.stdout[-3000:]}\n{packaged.stderr[-3000:]}")
        version = json.loads((output / "package" / "release.json").read_text(encoding="utf-8"))["version"]
        for environment in ("staging", "production"):
            promoted = kit(
                project,
                env,
                "release",
                "--store",
                str(store),
                "promote",
                "--environment",
                environment,
                "--version",
                version,
            )
            if promoted.returncode != 0:
                raise AssertionError(f"promoting {version} to {environment} failed:\n{promoted.stderr[-3000:]}")
        print(f"released {version} to staging and production in {time.perf_counter() - started:.1f} s")
        return version

    try:
        print("\n--- merge to release: package, staging, production ---")
        first = release()
        sh([*git, "pull", "-q", "--rebase", "origin", "main"], project, env)
        sh([*git, "merge", "-q", "--no-ff", "-m", "Merge the tuned model", "tune-c"], project, env)
        print("\n--- a second merge ---")
        release()
        print(f"\n--- roll production back to {first} ---")
        started = time.perf_counter()
        rolled = kit(
            project,
            env,
            "release",
            "--store",
            str(store),
            "rollback",
            "--environment",
            "production",
            "--version",
            first,
            "--reason",
            "the demo rolls back",
        )
        print(f"rolled back in {time.perf_counter() - started:.1f} s")
        sh([*git, "pull", "-q", "--rebase", "origin", "main"], project, env)
        for environment in ("staging", "production"):
            state = (project / "releases" / f"{environment}.yaml").read_text(encoding="utf-8")
            print(f"\n--- releases/{environment}.yaml ---\n{state}")
        print(sh(["git", "log", "--oneline", "-8", "--", "releases"], project, env))
        print("\n--- users call production, then the model monitor judges the window ---")
        sent = call_like_users(project, 40)
        started = time.perf_counter()
        watched = kit(project, env, "monitor", "check", "--no-issue", "--store", str(store))
        print(watched.stdout.split("### ✅ Model monitor: production")[-1].strip() or watched.stderr)
        print(f"{sent} predictions judged in {time.perf_counter() - started:.1f} s")
        return rolled.returncode == 0 and watched.returncode == 0
    finally:
        for environment in ("staging", "production"):
            LocalTarget(project.name, output / "serving").stop(environment)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `python tests/demo.py demo [--output DIR]`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["demo"])
    parser.add_argument("--output", type=Path, default=TEMPLATE / "demo")
    args = parser.parse_args(argv)
    os.environ.setdefault("BENTOML_HOME", str(args.output / "bentoml"))
    return demo(args.output)


if __name__ == "__main__":
    sys.exit(main())
