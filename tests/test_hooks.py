"""The answer rules in hooks/bake.py: every answer that cannot work gets one clear sentence."""

from __future__ import annotations

import re

import jinja2
import pytest

import bake
import template_dir
from helpers import COOKIECUTTER_JSON, HOSTILE_BUT_VALID, ROOT, UNSPLITTABLE_IDS, UNSPLITTABLE_LABELS, write_labels_csv


def test_default_answers_are_valid(answers):
    bake.validate(answers)


@pytest.mark.parametrize("remote", ["s3://ml-data/cancer", "gs://ml_data.example/a/b", "azure://models"])
def test_a_dvc_remote_on_each_cloud_is_accepted(answers, remote):
    bake.validate({**answers, "dvc_remote": remote})


@pytest.mark.parametrize("text", HOSTILE_BUT_VALID)
@pytest.mark.parametrize("field", ["project_name", "description", "author_name"])
def test_hostile_single_line_text_is_accepted_as_data(answers, field, text):
    bake.validate({**answers, field: text})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"project_name": "Two\nlines"}, "project_name must be a single line"),
        ({"description": "tab\there"}, "description must be a single line"),
        ({"project_name": "   "}, "project_name must not be empty"),
        ({"project_name": "x" * 201}, "at most 200 characters"),
        ({"project": "My Project"}, "project must be a lowercase slug"),
        ({"project": "-leading"}, "project must be a lowercase slug"),
        ({"project": "a--b"}, "project must be a lowercase slug"),
        ({"package": "my-package"}, "package must be a lowercase Python identifier"),
        ({"package": "1st"}, "package must be a lowercase Python identifier"),
        ({"package": "class"}, "would shadow a Python keyword"),
        ({"package": "json"}, "would shadow a Python keyword, standard module"),
        ({"package": "pandas"}, "would shadow"),
        ({"author_email": "not an email"}, "author_email must look like"),
        ({"python_version": "2.7"}, "python_version must be one of"),
        ({"model": "svm"}, "model must be one of"),
        ({"data_backend": "spark"}, "data_backend must be one of pandas, polars"),
        ({"training_runner": "tpu"}, "training_runner must be one of github-hosted, self-hosted-gpu, cml-cloud"),
        ({"dvc_remote": "ssh://host/path"}, "dvc_remote must be empty or s3://BUCKET/PATH"),
        ({"dvc_remote": "s3://ab"}, "dvc_remote must be empty or s3://"),
        ({"dvc_remote": "gs://bucket/path with space"}, "dvc_remote must be empty or s3://"),
        ({"dvc_remote": "azure://container/$(id)"}, "dvc_remote must be empty or s3://"),
        ({"actions_source": "stranger/actions@v1"}, "full 40-character commit SHA"),
        ({"actions_source": "github.com/x/y"}, "actions_source must be 'vendored'"),
        ({"dataset": "csv"}, "dataset 'csv' needs csv_path"),
        ({"csv_path": "data.csv"}, "csv_path is set but dataset is 'breast_cancer'"),
        ({"github_repository": "cancer-classifier"}, "github_repository must be OWNER/NAME"),
        ({"github_repository": "https://github.com/octo/x"}, "github_repository must be OWNER/NAME"),
        ({"github_repository": "octo/x y"}, "github_repository must be OWNER/NAME"),
        ({"github_repository": "-octo/x"}, "github_repository must be OWNER/NAME"),
        ({"github_repository": "octo/x/"}, "github_repository must be OWNER/NAME"),
        ({"github_repository": "a" * 40 + "/x"}, "github_repository must be OWNER/NAME"),
        ({"github_repository": "octo/x.git"}, "github_repository names the repository without '.git'"),
        ({"deploy_target": "kubernetes", "project": "p" * 53}, "project must be at most 52 characters"),
        ({"deploy_target": "kubernetes", "project": "yes"}, "project 'yes' reads as a boolean or null"),
    ],
)
def test_bad_answer_is_rejected_with_one_sentence(answers, change, message):
    with pytest.raises(bake.AnswerError, match=message) as caught:
        bake.validate({**answers, **change})
    text = str(caught.value)
    assert "\n" not in text
    assert text.endswith(".")


@pytest.mark.parametrize("repository", ["octo/cancer-classifier", "Octo-Org/ML_models.v2", "a" * 39 + "/" + "b" * 100])
def test_github_repository_of_owner_and_name_is_accepted(answers, repository):
    bake.validate({**answers, "deploy_target": "kubernetes", "github_repository": repository})


def test_kubernetes_names_bind_only_kubernetes_projects(answers):
    # A long project name fits everywhere but a Kubernetes namespace `<project>-production`.
    bake.validate({**answers, "deploy_target": "local", "project": "p" * 64})
    bake.validate({**answers, "deploy_target": "kubernetes", "project": "p" * 52})


def test_actions_from_a_repository_pinned_by_sha_are_accepted(answers):
    bake.validate({**answers, "actions_source": "my-org/ml-actions@" + "a" * 40})


def csv_answers(answers, path, target="churned"):
    return {**answers, "dataset": "csv", "csv_path": str(path), "target_column": target}


def test_good_csv_is_accepted(answers, churn_csv):
    bake.validate(csv_answers(answers, churn_csv))


@pytest.fixture
def churn_parquet(churn_csv, tmp_path):
    import pandas as pd

    path = tmp_path / "churn.parquet"
    pd.read_csv(churn_csv).to_parquet(path, index=False)
    return path


def parquet_answers(answers, path, target="churned"):
    return {**answers, "dataset": "parquet", "parquet_path": str(path), "target_column": target}


def test_good_parquet_is_accepted(answers, churn_parquet):
    bake.validate(parquet_answers(answers, churn_parquet))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda raw: raw[: len(raw) // 2], "is cut short: a whole parquet file ends with PAR1"),
        (lambda raw: b"tenure,churned\n1,yes\n", "is not a parquet file \\(it does not start with PAR1\\)"),
        (lambda raw: raw[:6], "is cut short"),
        (lambda raw: b"", "is not a parquet file"),
    ],
    ids=["truncated", "a-csv-renamed", "magic-only", "empty"],
)
def test_a_file_that_is_no_whole_parquet_is_rejected_with_one_sentence(answers, churn_parquet, damage, message):
    churn_parquet.write_bytes(damage(churn_parquet.read_bytes()))
    with pytest.raises(bake.AnswerError, match=message) as caught:
        bake.validate(parquet_answers(answers, churn_parquet))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dataset": "parquet"}, "dataset 'parquet' needs parquet_path"),
        ({"dataset": "parquet", "parquet_path": "/no/such.parquet"}, "is not a readable file"),
        ({"parquet_path": "data.parquet"}, "parquet_path is set but dataset is 'breast_cancer'"),
    ],
)
def test_parquet_answers_that_cannot_work_are_one_sentence(answers, change, message):
    with pytest.raises(bake.AnswerError, match=message):
        bake.validate({**answers, **change})


def test_parquet_over_the_size_guard_is_rejected(answers, churn_parquet, monkeypatch):
    monkeypatch.setattr(bake, "CSV_MAX_BYTES", 100)
    with pytest.raises(bake.AnswerError, match="larger than 0 MiB; keep big data in a DVC remote"):
        bake.validate(parquet_answers(answers, churn_parquet))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"a,churned\n", "has 0 data rows"),
        (b"a;churned\n" + b"1;yes\n" * 60, "single column"),
        (b"a,b\n" + b"1,2\n" * 60, "target_column 'churned' is not in the CSV header"),
        (b"a,a,churned\n" + b"1,2,yes\n" * 60, "duplicate column names"),
        (b"a,churned\n" + b"1,yes\n" * 60 + b"1,yes,extra\n", "number of fields differs"),
        (b"a,churned\n" + b"1,caf\xe9\n" * 60, "is not UTF-8"),
    ],
    ids=["empty", "header-only", "wrong-delimiter", "no-target", "duplicate-columns", "ragged", "not-utf8"],
)
def test_bad_csv_is_rejected_with_one_sentence(answers, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(bake.AnswerError, match=message) as caught:
        bake.validate(csv_answers(answers, path))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("labels", "message"), UNSPLITTABLE_LABELS, ids=UNSPLITTABLE_IDS)
def test_labels_the_split_cannot_use_are_rejected_with_one_sentence(answers, tmp_path, labels, message):
    path = write_labels_csv(tmp_path / "labels.csv", labels)
    with pytest.raises(bake.AnswerError, match=re.escape(message)) as caught:
        bake.validate(csv_answers(answers, path))
    assert "\n" not in str(caught.value)
    assert str(caught.value).endswith(".")


@pytest.mark.parametrize("missing", sorted(bake.MISSING_VALUES))
def test_every_string_pandas_reads_as_missing_is_a_missing_label(answers, tmp_path, missing):
    path = write_labels_csv(tmp_path / "labels.csv", ["yes", "no"] * 30 + [missing])
    with pytest.raises(bake.AnswerError, match="has no label in 1 of its 61 rows"):
        bake.validate(csv_answers(answers, path))


def test_missing_label_strings_are_exactly_the_ones_pandas_reads_as_missing():
    from pandas._libs.parsers import STR_NA_VALUES

    assert bake.MISSING_VALUES == STR_NA_VALUES


def test_the_smallest_csv_the_split_can_use_is_accepted(answers, tmp_path):
    # 52 rows: a 25% test split holds 13, one per class.
    path = write_labels_csv(tmp_path / "labels.csv", [f"c{i % 13}" for i in range(52)])
    bake.validate(csv_answers(answers, path))


def test_missing_csv_is_rejected(answers, tmp_path):
    with pytest.raises(bake.AnswerError, match="is not a readable file"):
        bake.validate(csv_answers(answers, tmp_path / "nope.csv"))


def test_csv_over_the_size_guard_is_rejected(answers, churn_csv, monkeypatch):
    monkeypatch.setattr(bake, "CSV_MAX_BYTES", 100)
    with pytest.raises(bake.AnswerError, match="keep big data in a DVC remote"):
        bake.validate(csv_answers(answers, churn_csv))


def test_pre_gen_reports_the_reason_and_fails(answers, capsys):
    assert bake.pre_gen({**answers, "project": "Bad Slug"}) == 1
    assert capsys.readouterr().err.startswith("error: project must be a lowercase slug")


@pytest.mark.parametrize("script", ["pre_gen_project.py", "post_gen_project.py"])
def test_hook_scripts_are_valid_python_before_rendering(script):
    source = (bake.Path(bake.__file__).parent / script).read_text(encoding="utf-8")
    compile(source, script, "exec")


def test_post_gen_without_pipeline_packages_commits_and_says_what_to_run(answers, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bake, "can_reproduce", lambda _answers: False)
    (tmp_path / "README.md").write_text("# project\n", encoding="utf-8")
    assert bake.post_gen({**answers, "actions_source": "my-org/x@" + "a" * 40}, tmp_path, ROOT) == 0
    note = capsys.readouterr().err
    assert "run `pip install -e '.[dev]'` and `dvc repro`" in note
    assert "commit what it writes" in note
    assert "a baseline CI reproduces from their base commit" in note
    log = bake.subprocess.run(["git", "log", "--format=%s"], cwd=tmp_path, capture_output=True, text=True).stdout
    assert log.strip() == "Create project from template"


@pytest.mark.parametrize("target", ["local", "kubernetes", "bentocloud"])
def test_post_gen_keeps_the_deploy_folder_only_for_kubernetes(answers, tmp_path, monkeypatch, target):
    # Given a rendered project with its deploy/ folder (cookiecutter cannot skip a folder by its name),
    monkeypatch.setattr(bake, "can_reproduce", lambda _answers: False)
    (tmp_path / "README.md").write_text("# project\n", encoding="utf-8")
    (tmp_path / "deploy" / "kubernetes").mkdir(parents=True)
    (tmp_path / "deploy" / "kubernetes" / "kustomization.yaml").write_text("resources: []\n", encoding="utf-8")
    # when the post-generation hook runs,
    assert bake.post_gen({**answers, "deploy_target": target, "actions_source": "o/r@" + "a" * 40}, tmp_path, ROOT) == 0
    # then only a kubernetes project keeps it.
    assert (tmp_path / "deploy").exists() == (target == "kubernetes")


def test_post_gen_keeps_the_project_when_the_first_run_fails(answers, tmp_path, monkeypatch, capsys):
    def broken(*_args):
        raise RuntimeError("`dvc repro` failed: boom")

    monkeypatch.setattr(bake, "can_reproduce", lambda _answers: True)
    monkeypatch.setattr(bake, "reproduce_baseline", broken)
    (tmp_path / "README.md").write_text("# project\n", encoding="utf-8")
    assert bake.post_gen({**answers, "actions_source": "my-org/x@" + "a" * 40}, tmp_path, ROOT) == 0
    assert "the first pipeline run failed" in capsys.readouterr().err
    assert (tmp_path / "README.md").exists()


def test_hooks_are_rendered_with_the_template_folder_cookiecutter_works_in(tmp_path, monkeypatch):
    # Given cookiecutter working in the template's folder, as it does while it renders hooks,
    monkeypatch.chdir(tmp_path)
    environment = jinja2.Environment(extensions=[template_dir.TemplateDirExtension])
    # when a hook asks for the template's folder, then it gets that folder as an absolute path.
    assert environment.from_string("{{ template_dir() }}").render() == str(tmp_path)


def test_an_update_render_skips_the_csv_check_and_everything_outside_the_template(answers, tmp_path, monkeypatch):
    # Given an update render (cruft update, on a machine without the project's CSV),
    monkeypatch.setenv(bake.UPDATE_VARIABLE, "1")
    csv = csv_answers(answers, tmp_path / "not-on-this-machine.csv")
    # then the answers pass without the file,
    bake.validate(csv)
    # and the post-generation hook adds only the template's own files: no data, no git repository, no record.
    rendered = tmp_path / "render"
    rendered.mkdir()
    assert bake.post_gen(csv, rendered, ROOT) == 0
    assert (rendered / ".github" / "actions" / "mlgitops").is_dir()
    assert not (rendered / ".git").exists() and not (rendered / "data").exists()
    assert not (rendered / bake.CRUFT_FILE).exists()


def test_a_bake_from_a_git_checkout_records_the_template_for_updates(answers, tmp_path, monkeypatch):
    # Given a template that is a git checkout with an origin (as cookiecutter's clone of gh:OWNER/REPO is),
    template = tmp_path / "template"
    template.mkdir()
    for args in (["init", "-q"], ["remote", "add", "origin", "https://github.com/octo/kit.git"]):
        bake.subprocess.run(["git", *args], cwd=template, check=True)
    bake.subprocess.run(
        ["git", "-c", "user.name=a", "-c", "user.email=a@b.c", "commit", "-q", "--allow-empty", "-m", "v1"],
        cwd=template,
        check=True,
    )
    # then the record names the remote and the commit, with the project's answers and none of the run's.
    record = bake.template_record({**answers, "_output_dir": "/tmp/x", "_repo_dir": "/tmp/y"}, template)
    head = bake.subprocess.run(["git", "rev-parse", "HEAD"], cwd=template, capture_output=True, text=True).stdout
    assert (record["template"], record["commit"]) == ("https://github.com/octo/kit.git", head.strip())
    context = record["context"]["cookiecutter"]
    assert context["project"] == answers["project"] and "_output_dir" not in context and "_repo_dir" not in context
    # A folder that is not a checkout's top (an unpacked archive inside some repository) records nothing.
    (template / "sub").mkdir()
    assert bake.template_record(answers, template / "sub") is None


def test_the_first_run_of_a_parquet_project_needs_pyarrow_in_the_baking_python(answers, monkeypatch):
    present = {"pyarrow": None}
    real = bake.importlib.util.find_spec
    monkeypatch.setattr(bake.importlib.util, "find_spec", lambda name: None if name in present else real(name))
    assert bake.can_reproduce(answers)
    assert not bake.can_reproduce({**answers, "dataset": "parquet"})


# --- the task, and what fits it ---


def render_resolved(answers: dict, name: str) -> str:
    """cookiecutter.json's `__<name>` answer, rendered as cookiecutter renders it for these answers."""
    template = COOKIECUTTER_JSON[f"__{name}"]
    return jinja2.Environment(autoescape=False).from_string(template).render(cookiecutter=answers)


@pytest.mark.parametrize("task", bake.FITS)
@pytest.mark.parametrize("name", ["dataset", "model", "metric"])
def test_auto_resolves_to_the_tasks_first_fit_as_cookiecutter_json_renders_it(answers, task, name):
    given = {**answers, "task": task}
    assert given[name] == bake.AUTO
    assert render_resolved(given, name) == bake.resolved(given, name) == bake.FITS[task][name][0]
    # An explicit answer is kept as it is, by both.
    explicit = {**given, name: bake.FITS[task][name][-1]}
    assert render_resolved(explicit, name) == bake.resolved(explicit, name) == bake.FITS[task][name][-1]


def test_every_choice_is_auto_or_fits_a_task(answers):
    for name in ("dataset", "model", "metric"):
        offered = set(COOKIECUTTER_JSON[name]) - {bake.AUTO}
        assert offered == {value for fits in bake.FITS.values() for value in fits[name]}, name


COMBINATIONS = [
    (task, dataset, model, metric)
    for task in COOKIECUTTER_JSON["task"]
    for dataset in COOKIECUTTER_JSON["dataset"]
    for model in COOKIECUTTER_JSON["model"]
    for metric in COOKIECUTTER_JSON["metric"]
]


def fits(task: str, dataset: str, model: str, metric: str) -> bool:
    chosen = {"dataset": dataset, "model": model, "metric": metric}
    return all(value == bake.AUTO or value in bake.FITS[task][name] for name, value in chosen.items())


def test_every_combination_the_hook_refuses_is_refused_for_one_named_reason(answers):
    # Given every task x dataset x model x metric the questions allow
    refused = 0
    for task, dataset, model, metric in COMBINATIONS:
        given = {**answers, "task": task, "dataset": dataset, "model": model, "metric": metric}
        if fits(task, dataset, model, metric):
            bake.validate_fit(given)
            continue
        # When one of them does not fit the task, then the hook says which, and which would
        with pytest.raises(bake.AnswerError) as caught:
            bake.validate_fit(given)
        message = str(caught.value)
        assert f"but task is {task!r}: choose one of" in message and message.endswith("(or auto).")
        assert "\n" not in message
        refused += 1
    assert 0 < refused < len(COMBINATIONS)


def test_a_classification_metric_for_a_regression_says_which_to_use(answers):
    with pytest.raises(bake.AnswerError) as caught:
        bake.validate({**answers, "task": "regression", "metric": "roc_auc"})
    assert str(caught.value) == (
        "metric 'roc_auc' is for classification, but task is 'regression': choose one of rmse, mae, r2 (or auto)."
    )


def write_target_csv(path, values):
    path.write_text("a,price\n" + "".join(f"{i},{value}\n" for i, value in enumerate(values)), encoding="utf-8")
    return path


def test_a_regression_csv_with_a_numeric_target_is_accepted(answers, tmp_path):
    path = write_target_csv(tmp_path / "prices.csv", [f"{100 + i * 2.5}" for i in range(60)])
    bake.validate({**csv_answers(answers, path, "price"), "task": "regression"})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["1.5"] * 30 + ["tall"] + ["2.5"] * 29, "target_column 'price' holds 'tall' in data row 31; a regression"),
        ([f"{i}" for i in range(59)] + ["NA"], "target_column 'price' has no value in 1 of its 60 rows"),
        (["4.0"] * 60, "target_column 'price' is '4.0' in every row; there is nothing to learn"),
        ([f"{i}" for i in range(59)] + ["inf"], "holds 'inf' in data row 60; use finite numbers"),
    ],
    ids=["text", "missing", "constant", "infinite"],
)
def test_a_regression_target_the_model_cannot_learn_from_is_refused_with_one_sentence(
    answers, tmp_path, values, message
):
    path = write_target_csv(tmp_path / "prices.csv", values)
    with pytest.raises(bake.AnswerError) as caught:
        bake.validate({**csv_answers(answers, path, "price"), "task": "regression"})
    assert message in str(caught.value) and str(caught.value).endswith(".")
