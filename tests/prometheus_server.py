"""A real Prometheus (Debian's `prometheus` package, which `make test` installs) scraping test servers.

It scrapes every second, with the target labels a Kubernetes scrape would add (the namespace, Argo Rollouts'
pod template hash), so the monitor's and the canary analysis' PromQL run against the real query engine.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml

from demo import free_port


@contextlib.contextmanager
def prometheus(folder: Path, targets: dict[str, dict[str, str]]) -> Iterator[str]:
    """Run Prometheus on a free port scraping each `host:port` target with its labels; yields its URL."""
    binary = shutil.which("prometheus")
    assert binary, "Prometheus must be on PATH (Debian's package `prometheus`; `make test` installs it)"
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "bento",
                "static_configs": [{"targets": [target], "labels": labels} for target, labels in targets.items()],
            }
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log = (folder / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (folder / "prometheus.log").read_text()
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    break
            assert time.monotonic() < deadline, "Prometheus was not ready within 60 s"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def scraped(url: str, target: str, scrapes: int = 3) -> None:
    """Wait until Prometheus has scraped `target` successfully `scrapes` more times."""
    from mlgitops import prometheus as promql

    def count() -> float:
        samples = promql.query(url, f'count_over_time(up{{instance="{target}"}}[10m])')
        return samples[0][1] if samples else 0

    start, deadline = count(), time.monotonic() + 60
    while count() < start + scrapes:
        assert time.monotonic() < deadline, f"Prometheus did not scrape {target}"
        time.sleep(0.5)
