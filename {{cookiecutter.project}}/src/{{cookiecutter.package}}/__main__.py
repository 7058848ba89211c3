{%- set regression = cookiecutter.task == "regression" -%}
"""Command line of the pipeline: `python -m {{ cookiecutter.package }} STAGE`, one command per DVC stage.

dvc.yaml passes every path as an option, from `mlgitops.paths` in params.yaml; run by hand, a command
takes the same paths from params.yaml.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .params import Params, load_params

# Each command imports only what it uses: DVC runs every stage in a new process, and pandas, pandera and
# scikit-learn take seconds to import (a stage with nothing to do, like `schema` once declared, needs none).

# The options each command takes, named after the `mlgitops.paths` entry they default to.
PATH_OPTIONS = {
    "prepare": ("train", "test"),
    "schema": ("schema",),
    "validate": ("train", "test", "schema", "data_check", "data_profile"),
    "train": ("train", "schema", "model", "model_meta"),
    "evaluate": ("model", "test", "metrics", "{{ "predictions" if regression else "confusion" }}", "importance"),
    "register": ("model", "model_meta"),
    "example": ("test", "model_meta"),
    "reference": ("model", "model_meta", "test"),
    "score": (),
    "live": (),
}
# Exit code of `score` when the predictions or the reference cannot be scored, apart from other errors.
UNSCORABLE = 2


def paths(args: argparse.Namespace, params: Params) -> argparse.Namespace:
    """The command's paths: given as options, or as params.yaml declares them."""
    return argparse.Namespace(
        **{name: getattr(args, name) or getattr(params.paths, name) for name in PATH_OPTIONS[args.command]}
    )


def cmd_prepare(args: argparse.Namespace, params: Params) -> int:
    from . import data

    where = paths(args, params)
    train_path, test_path = data.prepare(params.data, where.train, where.test)
    print(f"wrote {train_path} and {test_path}")
    return 0


def cmd_schema(args: argparse.Namespace, params: Params) -> int:
    where = paths(args, params)
    if where.schema.exists() and not args.force:
        print(f"{where.schema} already declares the schema; pass --force to infer it again.")
        return 0
    from . import data, schema

    frame = data.load_source(params.data)
    schema.save(schema.infer(frame, params.data.target), where.schema)
    print(f"declared {where.schema} from the data ({len(frame)} rows); review it and commit it.")
    return 0


def cmd_validate(args: argparse.Namespace, params: Params) -> int:
    from . import schema

    where = paths(args, params)
    declared = schema.load(where.schema)
    splits = {"train": where.train, "test": where.test}
    violations = schema.validate(splits, declared, params.data.target, where.data_check, where.data_profile)
    for v in violations:
        place = f"{v['split']} split, column {v['column']!r}"
        print(f"error: {place} breaks {v['rule']} (e.g. {v['case']!r})", file=sys.stderr)
    if violations:
        print(f"{len(violations)} schema violation(s); see {where.data_check}.", file=sys.stderr)
        return 1
    print(f"data matches {where.schema}")
    return 0


def cmd_train(args: argparse.Namespace, params: Params) -> int:
    from . import schema, train

    where = paths(args, params)
    declared = schema.load(where.schema)
    meta, seconds = train.train(
        where.train, params.data.target, params.model, params.data.seed, declared, where.model, where.model_meta
    )
    print(f"trained {meta['family']} on {meta['train_rows']} rows in {seconds:.2f} s")
    return 0


def cmd_evaluate(args: argparse.Namespace, params: Params) -> int:
    from . import evaluate

    where = paths(args, params)
    primary = params.evaluate.metric
    if primary not in evaluate.METRICS:
        print(f"error: evaluate.metric {primary!r} is not one of {', '.join(evaluate.METRICS)}.", file=sys.stderr)
        return 1
    scores = evaluate.evaluate(
        where.model,
        where.test,
        params.data.target,
        params.data.seed,
        where.metrics,
        where.{{ "predictions" if regression else "confusion" }},
        where.importance,
    )
    better = "higher" if evaluate.METRICS[primary].higher_is_better else "lower"
    print(f"{primary} = {scores[primary]} ({better} is better)")
    return 0


def cmd_register(args: argparse.Namespace, params: Params) -> int:
    from . import registry
    from .metadata import read_meta
    from .params import load_monitor

    where = paths(args, params)
    # The Bento built next logs as `mlgitops.monitor` says: refuse settings the service would refuse, before it.
    load_monitor([feature["name"] for feature in read_meta(where.model_meta)["features"]])
    print(registry.register(where.model, where.model_meta))
    return 0


def cmd_example(args: argparse.Namespace, params: Params) -> int:
    import json

    import pandas as pd

    from .metadata import read_meta

    where = paths(args, params)
    meta = read_meta(where.model_meta)
    names = [f["name"] for f in meta["features"]]
    complete = pd.read_csv(where.test).dropna(subset=names)
    if complete.empty:
        raise ValueError(f"every row of {where.test} misses a feature value, so none makes a valid request.")
    row = complete.iloc[0]
    instance = {
        f["name"]: float(row[f["name"]]) if f["kind"] == "numeric" else str(row[f["name"]]) for f in meta["features"]
    }
    print(json.dumps({"instances": [instance]}, indent=2))
    return 0


def cmd_reference(args: argparse.Namespace, params: Params) -> int:
    import joblib
    import pandas as pd

    from . import reference
    from .metadata import read_meta

    where = paths(args, params)
    summary = reference.build(
        joblib.load(where.model),
        read_meta(where.model_meta),
        pd.read_csv(where.test),
        params.evaluate.metric,
        args.rows,
        params.data.seed,
        args.out,
    )
    print(f"wrote {summary['rows']} reference rows to {args.out}: offline {summary['metric']} = {summary['offline']}")
    return 0


def cmd_score(args: argparse.Namespace, _params: Params) -> int:
    import json

    from . import reference

    try:
        answers = json.loads(args.predictions.read_text(encoding="utf-8"))
        print(json.dumps(reference.score(args.reference, answers), indent=2))
    except (OSError, json.JSONDecodeError) as err:
        print(f"error: cannot read the predictions: {err}", file=sys.stderr)
        return UNSCORABLE
    except reference.ReferenceError as err:
        print(f"error: {err}", file=sys.stderr)
        return UNSCORABLE
    return 0


def cmd_live(args: argparse.Namespace, _params: Params) -> int:
    import json

    from . import live

    try:
        request = json.loads(args.feedback.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        print(f"error: cannot read the joined feedback: {err}", file=sys.stderr)
        return UNSCORABLE
    print(json.dumps(live.live_metrics(request), indent=2))
    return 0


COMMANDS = {
    "prepare": (cmd_prepare, "load the data and write the train/test split"),
    "schema": (cmd_schema, "declare the data schema by inferring it from the current data"),
    "validate": (cmd_validate, "check the split against the declared schema"),
    "train": (cmd_train, "fit the model on the train split"),
    "evaluate": (cmd_evaluate, "score the model on the test split"),
    "register": (cmd_register, "store the model in BentoML's model store, before `bentoml build`"),
    "example": (cmd_example, "print a /predict request made from the first complete test row"),
    "reference": (cmd_reference, "write a frozen sample of the test split, its requests and the model's answers"),
    "score": (cmd_score, "score a service's predictions of the reference rows against the model's own"),
    "live": (cmd_live, "each release's live metric from feedback, with intervals, and whether two releases differ"),
}


def add_options(name: str, command: argparse.ArgumentParser) -> None:
    """The options of a command beyond its paths."""
    if name == "schema":
        command.add_argument("--force", action="store_true", help="replace an existing schema")
    if name == "reference":
        command.add_argument("--out", type=Path, required=True, help="folder for the reference files")
        command.add_argument("--rows", type=int, default=200, help="rows to sample from the test split")
    if name == "score":
        command.add_argument("--reference", type=Path, required=True, help="folder the reference command wrote")
        command.add_argument(
            "--predictions", type=Path, required=True, help="JSON list of the service's predictions, in row order"
        )
    if name == "live":
        command.add_argument(
            "--feedback", type=Path, required=True, help="JSON of labelled answers by version (the monitor writes it)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command and run it; expected failures end with one `error:` line and exit code 1."""
    parser = argparse.ArgumentParser(prog="python -m {{ cookiecutter.package }}", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (run, help_text) in COMMANDS.items():
        command = commands.add_parser(name, help=help_text)
        for option in PATH_OPTIONS[name]:
            command.add_argument(
                f"--{option.replace('_', '-')}", dest=option, type=Path, help=f"default: mlgitops.paths.{option}"
            )
        command.set_defaults(run=run)
        add_options(name, command)
    args = parser.parse_args(argv)
    try:
        return args.run(args, load_params())
    # ValueError covers data.DataError, without importing pandas for the commands that do not read data.
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
