"""Which cloud holds the project's DVC remote, and whether the workflow gave what its keyless (OIDC) login needs.

The dvc-remote-login action runs this first, then only the official login action of that cloud. The remote's
URL comes from the project's DVC configuration, so changing the remote with `dvc remote` needs no workflow edit.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from . import gha


@dataclass(frozen=True)
class Cloud:
    """A cloud a DVC remote can live in, and the repository variables its keyless login reads."""

    name: str
    title: str
    variables: tuple[str, ...]


CLOUDS = {
    "s3": Cloud("aws", "AWS", ("AWS_ROLE_ARN", "AWS_REGION")),
    # A service account to impersonate is optional: without one, Google grants the pool's identity directly.
    "gs": Cloud("gcp", "Google Cloud", ("GCP_WORKLOAD_IDENTITY_PROVIDER",)),
    "azure": Cloud(
        "azure", "Azure", ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID", "AZURE_STORAGE_ACCOUNT")
    ),
}


class LoginError(ValueError):
    """The remote or the variables cannot give a keyless login; the message is one sentence for the user."""


def dvc(*args: str) -> str:
    """A DVC command's output, or LoginError with what DVC said."""
    done = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise LoginError(f"`dvc {' '.join(args)}` failed: {said}")
    return done.stdout


def default_remote() -> tuple[str, str]:
    """The name and URL of the project's default DVC remote."""
    # `dvc remote default` fails, saying nothing, when no default is set.
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "remote", "default"], capture_output=True, text=True, check=False
    )
    name = done.stdout.strip() if done.returncode == 0 else ""
    if not name:
        raise LoginError(
            "The project has no default DVC remote: add one with `dvc remote add -d storage s3://BUCKET/PATH`, "
            "or remove the login step."
        )
    for line in dvc("remote", "list").splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == name:
            return name, fields[1]
    raise LoginError(f"DVC names {name!r} as the default remote but lists no URL for it.")


def endpoint(name: str) -> str:
    """The remote's own S3 endpoint (MinIO, R2, ...), empty for AWS itself."""
    command = [sys.executable, "-m", "dvc", "config", f"remote.{name}.endpointurl"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


def cloud_of(url: str, given: Mapping[str, str]) -> Cloud:
    """The cloud of a remote URL, once every variable its login needs is set."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in CLOUDS:
        raise LoginError(
            f"The DVC remote {url!r} is not on S3, Google Cloud Storage or Azure Blob Storage "
            "(s3://, gs://, azure://), the clouds with a keyless login here."
        )
    cloud = CLOUDS[scheme]
    missing = [name for name in cloud.variables if not given.get(name, "").strip()]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise LoginError(
            f"Set the repository variable{plural} {', '.join(missing)} (Settings > Secrets and variables > "
            f"Actions > Variables) for the keyless {cloud.title} login to the DVC remote {url}."
        )
    return cloud


def main(argv: Sequence[str] | None = None) -> int:
    """Print which cloud to log in to as the step output `cloud`; one annotated sentence when it cannot."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args(argv)
    try:
        name, url = default_remote()
        cloud = cloud_of(url, os.environ)
        if cloud.name == "aws" and endpoint(name):
            raise LoginError(
                f"The DVC remote {name} is S3-compatible storage at {endpoint(name)}, not AWS, so it has no keyless "
                "AWS login; give the job that storage's keys instead of this step."
            )
        if cloud.name == "azure":
            # Kept out of git: the storage account is the runner's setting of the shared remote.
            dvc("remote", "modify", "--local", name, "account_name", os.environ["AZURE_STORAGE_ACCOUNT"].strip())
    except LoginError as err:
        gha.annotate("error", str(err), title="dvc-remote-login")
        return 1
    gha.set_output("cloud", cloud.name)
    print(f"DVC remote {name} ({url}): logging in to {cloud.title} with the workflow's OIDC token.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
