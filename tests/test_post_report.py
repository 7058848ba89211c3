"""The sticky comment poster, against the GitHub stand-in: CML's watermark protocol, updates, failures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from fake_github import ACTIONS_BOT, FakeGitHub
from helpers import ROOT
from mlgitops import github_api, post_report

SHA = "a" * 40
REPO = "octo/model"
CML_STANDIN = Path(__file__).parent / "standins" / "cml"
# CML 0.20.6 src/watermark.js isIn(): `!\\[\\]\\(${url}#[0-9a-fA-F]+ "${title}"\\)`, no flags; here for any title.
CML_WATERMARK = re.compile(r'!\[\]\(https://cml\.dev/watermark\.png#[0-9a-fA-F]+ "CML watermark[^"]*"\)')
OTHER = "other-report"


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


@pytest.fixture
def cml(github, tmp_path, monkeypatch):
    """The CML stand-in first on PATH, talking to the GitHub stand-in; returns the file its calls are logged to."""
    monkeypatch.setenv("PATH", f"{CML_STANDIN}:{post_report.os.environ['PATH']}")
    monkeypatch.setenv("STANDIN_CML_API_URL", github.url)
    monkeypatch.setenv("GITHUB_SHA", "b" * 40)
    monkeypatch.delenv("GITHUB_SERVER_URL", raising=False)
    log = tmp_path / "cml-calls.jsonl"
    monkeypatch.setenv("STANDIN_CML_LOG", str(log))
    return log


def cml_calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def warnings(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("::warning")]


def post(report_dir, *extra):
    """Run the poster on the saved report; the built-in poster unless the test names one."""
    if "--poster" not in extra:
        extra = ("--poster", "builtin", *extra)
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
    monkeypatch.setattr(github_api.time, "sleep", waits.append)
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
    monkeypatch.setattr(github_api.time, "sleep", lambda _s: None)
    github.fail("GET", r"/issues/7/comments", 403, times=10)
    assert post(report_dir) == 0
    assert "GitHub rate limit reached (403)" in capsys.readouterr().out


def test_persistent_server_errors_give_up_with_a_warning(github, report_dir, capsys, monkeypatch):
    monkeypatch.setattr(github_api.time, "sleep", lambda _s: None)
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
    monkeypatch.setattr(github_api.time, "sleep", lambda _s: None)
    github.fail(
        "POST", r"/issues/7/comments$", 403, times=1, headers={"x-ratelimit-remaining": "4000", "retry-after": "1"}
    )
    assert post(report_dir) == 0
    assert len(github.comments("octo", "model", 7)) == 1


def test_cml_is_asked_not_to_publish_files_the_untrusted_report_links_to(github, report_dir, cml):
    assert post(report_dir, "--poster", "cml") == 0
    [args] = cml_calls(cml)
    assert args[:5] == ["comment", "update", "--no-publish", "--driver=github", f"--repo=https://github.com/{REPO}"]
    assert "--target=pr/7" in args and "--watermark-title=model-report" in args


# -- posting through CML fails as gently as the built-in poster -------------------------------------------------


def test_given_cml_posts_then_its_comment_url_is_the_output_and_a_later_post_updates_it(
    github, report_dir, cml, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    assert post(report_dir, "--poster", "cml") == 0
    assert post(report_dir, "--poster", "cml") == 0
    [comment] = github.comments("octo", "model", 7)
    assert comment["body"].endswith(f'![](https://cml.dev/watermark.png#{"b" * 40} "CML watermark model-report")')
    assert "comment-url<<ghadelimiter_" in (tmp_path / "output").read_text()
    assert comment["html_url"] in (tmp_path / "output").read_text()
    assert warnings(capsys.readouterr().out) == []


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (403, {"message": "Resource not accessible by integration"}, "Resource not accessible by integration (403)"),
        (502, "<html>Unicorn!</html>", "Unicorn!"),
    ],
    ids=["forbidden", "bad-gateway"],
)
def test_given_github_refuses_cml_then_one_short_warning_quotes_it_and_the_step_succeeds(
    github, report_dir, cml, capsys, status, body, reason
):
    github.fail("POST", r"/issues/7/comments$", status, headers={"x-ratelimit-remaining": None}, body=body)
    assert post(report_dir, "--poster", "cml") == 0
    out = capsys.readouterr().out
    [warning] = warnings(out)
    assert warning.startswith("::warning::the report was not posted: cml comment update exited 1: ")
    assert reason in warning
    assert len(warning) < 600
    assert "It is in the job summary" in warning
    # CML's multi-kilobyte dump is still in the log for whoever debugs it, folded and unable to issue commands.
    dump = next(line for line in out.splitlines() if '"name": "HttpError"' in line)
    assert len(dump) > 2000
    assert out.index("::stop-commands::") < out.index(dump) < out.index("::endgroup::")
    assert github.comments("octo", "model", 7) == []


def test_given_cml_is_not_installed_then_a_warning_says_so(github, report_dir, monkeypatch, capsys):
    monkeypatch.setattr(post_report.shutil, "which", lambda _name: None)
    assert post(report_dir, "--poster", "cml") == 0
    assert "the cml command is not installed" in warnings(capsys.readouterr().out)[0]


def test_given_a_github_enterprise_runner_then_cml_is_pointed_at_its_server(github, report_dir, cml, monkeypatch):
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://ghe.example.com")
    assert post(report_dir, "--poster", "cml") == 0
    [args] = cml_calls(cml)
    assert "--repo=https://ghe.example.com/octo/model" in args
    assert "--driver=github" in args  # CML guesses the driver from the host, and this host is not github.com


def test_given_stray_cml_settings_in_the_environment_then_cml_uses_this_steps_token(
    github, report_dir, cml, monkeypatch
):
    for name in ("REPO_TOKEN", "CML_TOKEN", "CML_COMMENT_TOKEN", "CML_COMMENT_TARGET"):
        monkeypatch.setenv(name, "stray")
    assert post(report_dir, "--poster", "cml") == 0
    assert set(github.tokens) == {"ghs_test"}


def test_default_poster_is_cml_in_the_module_and_the_action_and_an_unset_variable_keeps_it(github, report_dir, cml):
    action = yaml.safe_load((ROOT / "actions" / "post-report" / "action.yml").read_text(encoding="utf-8"))
    assert action["inputs"]["poster"]["default"] == post_report.DEFAULT_POSTER == "cml"
    workflow = ROOT / "{{cookiecutter.project}}" / ".github" / "workflows" / "post-model-report.yml"
    assert "poster: {% raw %}${{ vars.REPORT_POSTER }}{% endraw %}" in workflow.read_text(encoding="utf-8")
    assert post(report_dir, "--poster", "") == 0  # what the workflow passes when REPORT_POSTER is not set
    assert len(cml_calls(cml)) == 1


def test_unknown_poster_is_refused_before_any_call(github, report_dir, capsys):
    assert post(report_dir, "--poster", "bultin") == 1
    assert "the poster 'bultin' is none of cml, builtin" in capsys.readouterr().out
    assert github.requests == []


# -- the built-in poster edits only what its own identity wrote ------------------------------------------------


def test_a_participants_comment_carrying_our_watermark_is_not_updated(github, report_dir):
    forged = "lgtm, merging\n\n" + post_report.watermark("model-report", "d" * 40)
    theirs = github.add_comment("octo", "model", 7, forged, user="mallory")
    assert post(report_dir, "--poster", "builtin") == 0
    comments = github.comments("octo", "model", 7)
    assert (comments[0]["id"], comments[0]["body"]) == (theirs, forged)
    assert [c["user"]["login"] for c in comments] == ["mallory", ACTIONS_BOT]
    assert comments[1]["body"].startswith("## Model report")


def test_with_an_app_token_the_comment_author_input_names_whose_comment_is_ours(report_dir, monkeypatch):
    with FakeGitHub(identities={"ghs_app": "model-bot[bot]"}) as github:
        monkeypatch.setenv("GITHUB_API_URL", github.url)
        monkeypatch.setenv("GITHUB_TOKEN", "ghs_app")
        github.add_pull("octo", "model", 7, head_sha=SHA, head_ref="feature")
        mark = "\n\n" + post_report.watermark("model-report", "d" * 40)
        by_actions = github.add_comment("octo", "model", 7, "from GITHUB_TOKEN" + mark)
        by_app = github.add_comment("octo", "model", 7, "from the app" + mark, user="model-bot[bot]")
        assert post(report_dir, "--poster", "builtin", "--author", "model-bot[bot]") == 0
        bodies = {c["id"]: c["body"] for c in github.comments("octo", "model", 7)}
    assert bodies[by_actions].startswith("from GITHUB_TOKEN")
    assert bodies[by_app].startswith("## Model report")
    assert len(bodies) == 2


# -- no watermark but ours ---------------------------------------------------------------------------------------

FORGERIES = [
    f'![](https://cml.dev/watermark.png#{"c" * 40} "CML watermark {OTHER}")',
    f'![](https://cml.dev/watermark.png#{"c" * 40} "CML watermark model-report")',
    '![](https://cml.dev/watermark.png#DEADBEEF "CML watermark")',
    '![x](https://cml.dev/watermark.png#1 "CML watermark a")',
    '! [] ( <http://CML.dev/Watermark.PNG#1> "CML watermark b")',
    '![](//cml.dev/watermark.png#1 "CML watermark c")',
    '![](https://www.cml.dev/watermark.png "CML watermark d")',
]


def forged_report(report_dir: Path) -> str:
    report = "## Model report\n\n" + "\n\ninnocent text ".join(FORGERIES) + "\n\n`" + FORGERIES[0] + "`\n"
    (report_dir / "model_report.md").write_text(report)
    return report


@pytest.mark.parametrize("forgery", FORGERIES)
def test_watermark_shaped_text_is_neutralised_but_stays_readable(forgery):
    safe = post_report.neutralise_watermarks(f"before {forgery} after")
    assert CML_WATERMARK.search(safe) is None
    assert post_report.FORGED_WATERMARK.search(safe) is None
    assert post_report.neutralise_watermarks(safe) == safe
    assert safe.replace("\\[", "[") == f"before {forgery} after"


@pytest.mark.parametrize("poster", ["builtin", "cml"])
def test_a_report_forging_watermarks_is_posted_with_exactly_one_ours_at_the_end(github, report_dir, cml, poster):
    forged_report(report_dir)
    assert post(report_dir, "--poster", poster) == 0
    [comment] = github.comments("octo", "model", 7)
    [match] = CML_WATERMARK.finditer(comment["body"])
    assert match.end() == len(comment["body"])
    assert match.group(0).endswith('"CML watermark model-report")')
    assert len(re.findall(r"!\[\]\(", comment["body"])) == 1
    assert post_report.has_watermark(comment["body"], "model-report")
    assert not post_report.has_watermark(comment["body"], OTHER)


@pytest.mark.parametrize("poster", ["builtin", "cml"])
def test_a_forged_watermark_cannot_make_another_reports_update_overwrite_ours(
    github, report_dir, cml, tmp_path, poster
):
    other = tmp_path / "other.md"
    other.write_text("other report, first version")
    run_cml = [str(CML_STANDIN / "cml"), "comment", "update", f"--repo=https://github.com/{REPO}"]
    run_cml += ["--target=pr/7", f"--watermark-title={OTHER}", str(other)]
    assert post_report.subprocess.run(run_cml, check=False).returncode == 0
    forged_report(report_dir)
    assert post(report_dir, "--poster", poster) == 0
    other.write_text("other report, second version")
    assert post_report.subprocess.run(run_cml, check=False).returncode == 0
    first, ours = github.comments("octo", "model", 7)
    assert first["body"].startswith("other report, second version")
    assert ours["body"].startswith("## Model report")
