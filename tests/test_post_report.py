"""The sticky comment poster, against the GitHub stand-in: CML's watermark protocol, updates, failures."""

from __future__ import annotations

import json

import pytest

from fake_github import FakeGitHub
from mlgitops import post_report

SHA = "a" * 40
REPO = "octo/model"


@pytest.fixture
def github(monkeypatch):
    with FakeGitHub() as fake:
        monkeypatch.setenv("GITHUB_API_URL", fake.url)
        monkeypatch.setenv("GITHUB_TOKEN", "ghs_test")
        fake.add_pull("octo", "model", 7, head_sha=SHA, head_ref="feature")
        yield fake


@pytest.fixture
def report_dir(tmp_path):
    (tmp_path / "model_report.md").write_text("## Model report\n\nall good\n")
    (tmp_path / "pull_request.json").write_text(json.dumps({"number": "7", "head_sha": SHA}))
    return tmp_path


def post(report_dir, *extra):
    return post_report.main(
        [
            "--repo",
            REPO,
            "--target",
            str(report_dir / "pull_request.json"),
            "--report",
            str(report_dir / "model_report.md"),
            *extra,
        ]
    )


def test_watermark_is_cmls_format_with_its_title_escaping():
    assert post_report.watermark("model_report*", "abc123") == (
        '![](https://cml.dev/watermark.png#abc123 "CML watermark model\\_report\\*")'
    )
    assert post_report.has_watermark("x\n\n" + post_report.watermark("model_report*", "ffff"), "model_report*")
    assert not post_report.has_watermark(post_report.watermark("other", "ffff"), "model_report*")


def test_first_post_creates_then_every_push_updates_the_same_comment(github, report_dir):
    assert post(report_dir) == 0
    (report_dir / "model_report.md").write_text("## Model report\n\nsecond push\n")
    assert post(report_dir) == 0
    [only] = github.comments("octo", "model", 7)
    assert only["body"].startswith("## Model report\n\nsecond push")
    assert only["body"].endswith(f'![](https://cml.dev/watermark.png#{SHA} "CML watermark model-report")')


def test_only_the_last_comment_with_our_watermark_is_edited(github, report_dir):
    github.add_comment("octo", "model", 7, "a human review", user="octocat")
    older = github.add_comment("octo", "model", 7, "old\n\n" + post_report.watermark("model-report", "b" * 40))
    for i in range(120):
        github.add_comment("octo", "model", 7, f"chatter {i}", user="octocat")
    newer = github.add_comment("octo", "model", 7, "newer\n\n" + post_report.watermark("model-report", "c" * 40))
    assert post(report_dir) == 0
    bodies = {c["id"]: c["body"] for c in github.comments("octo", "model", 7)}
    assert len(bodies) == 123
    assert bodies[older].startswith("old")
    assert bodies[newer].startswith("## Model report")


def test_cml_posted_comment_is_updated_by_this_poster(github, report_dir):
    cml_body = "cml report\n\n" + post_report.watermark("model-report", "d" * 40)
    made_by_cml = github.add_comment("octo", "model", 7, cml_body)
    assert post(report_dir) == 0
    assert [c["id"] for c in github.comments("octo", "model", 7)] == [made_by_cml]


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_transient_failures_are_retried(github, report_dir, status, monkeypatch):
    waits = []
    monkeypatch.setattr(post_report.time, "sleep", waits.append)
    github.fail("POST", r"/issues/7/comments$", status, times=1)
    assert post(report_dir) == 0
    assert len(github.comments("octo", "model", 7)) == 1
    assert len(waits) == 1 and 0 < waits[0] <= 2


def test_forbidden_is_a_clear_warning_and_not_a_failure(github, report_dir, capsys):
    github.fail("POST", r"/issues/7/comments$", 403, times=1, headers={"x-ratelimit-remaining": "4999"})
    assert post(report_dir) == 0
    out = capsys.readouterr().out
    assert "::warning::the report was not posted: GitHub refused POST" in out
    assert "pull-requests: write" in out
    assert github.comments("octo", "model", 7) == []


def test_exhausted_rate_limit_is_named_in_the_warning(github, report_dir, capsys, monkeypatch):
    monkeypatch.setattr(post_report.time, "sleep", lambda _s: None)
    github.fail("GET", r"/issues/7/comments", 403, times=10)
    assert post(report_dir) == 0
    assert "GitHub rate limit reached (403)" in capsys.readouterr().out


def test_persistent_server_errors_give_up_with_a_warning(github, report_dir, capsys, monkeypatch):
    monkeypatch.setattr(post_report.time, "sleep", lambda _s: None)
    github.fail("GET", r"/pulls/7$", 502, times=10)
    assert post(report_dir) == 0
    assert "GitHub answered 502" in capsys.readouterr().out


def test_a_report_about_an_older_commit_does_not_overwrite_a_newer_one(github, report_dir, capsys):
    github.add_pull("octo", "model", 7, head_sha="e" * 40, head_ref="feature")
    assert post(report_dir) == 0
    assert "moved on to" in capsys.readouterr().out
    assert github.comments("octo", "model", 7) == []


@pytest.mark.parametrize(
    "target",
    [{"number": "7; rm -rf /", "head_sha": SHA}, {"number": "7", "head_sha": "HEAD"}, {"number": "../7"}],
    ids=["number-not-digits", "sha-not-hex", "missing-sha"],
)
def test_malformed_saved_target_is_refused(github, report_dir, target, capsys):
    (report_dir / "pull_request.json").write_text(json.dumps(target))
    assert post(report_dir) == 1
    assert "refusing to post" in capsys.readouterr().out
    assert github.requests == []


def test_report_about_another_commit_than_the_run_is_refused(github, report_dir):
    assert post(report_dir, "--expect-head-sha", "f" * 40) == 1
    assert github.requests == []


def test_without_a_token_nothing_is_sent(github, report_dir, monkeypatch, capsys):
    monkeypatch.delenv("GITHUB_TOKEN")
    assert post(report_dir) == 0
    assert "no GITHUB_TOKEN" in capsys.readouterr().out
    assert github.requests == []


def test_oversized_report_is_cut_to_fit_and_keeps_its_watermark():
    body = post_report.with_watermark("x" * 100_000, "model-report", SHA)
    assert len(body) < 65_536
    assert post_report.has_watermark(body, "model-report")
    assert "the report was cut to fit" in body


def test_secondary_rate_limit_is_retried(github, report_dir, monkeypatch):
    monkeypatch.setattr(post_report.time, "sleep", lambda _s: None)
    github.fail(
        "POST", r"/issues/7/comments$", 403, times=1, headers={"x-ratelimit-remaining": "4000", "retry-after": "1"}
    )
    assert post(report_dir) == 0
    assert len(github.comments("octo", "model", 7)) == 1


def test_cml_is_asked_not_to_publish_files_the_untrusted_report_links_to(github, report_dir, tmp_path, monkeypatch):
    fake_cml = tmp_path / "bin" / "cml"
    fake_cml.parent.mkdir()
    fake_cml.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "cml-args"}\n')
    fake_cml.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_cml.parent}:{post_report.os.environ['PATH']}")
    assert post(report_dir, "--poster", "cml") == 0
    args = (tmp_path / "cml-args").read_text().split()
    assert args[:4] == ["comment", "update", "--no-publish", f"--repo=https://github.com/{REPO}"]
    assert "--target=pr/7" in args and "--watermark-title=model-report" in args
