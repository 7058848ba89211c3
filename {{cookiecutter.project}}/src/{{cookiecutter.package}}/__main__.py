"""Command line of the pipeline: `python -m {{ cookiecutter.package }} STAGE`, one command per DVC stage."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import data, schema
from .params import load_params


def cmd_prepare(_args: argparse.Namespace) -> int:
    params = load_params()
    train_path, test_path = data.prepare(params.data)
    print(f"wrote {train_path} and {test_path}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    params = load_params()
    if schema.SCHEMA_FILE.exists() and not args.force:
        print(f"{schema.SCHEMA_FILE} already declares the schema; pass --force to infer it again.")
        return 0
    frame = data.load_source(params.data)
    schema.save(schema.infer(frame, params.data.target))
    print(f"declared {schema.SCHEMA_FILE} from the data ({len(frame)} rows); review it and commit it.")
    return 0


def cmd_validate(_args: argparse.Namespace) -> int:
    declared = schema.load()
    target = load_params().data.target
    violations = schema.validate({"train": data.TRAIN_FILE, "test": data.TEST_FILE}, declared, target)
    for v in violations:
        where = f"{v['split']} split, column {v['column']!r}"
        print(f"error: {where} breaks {v['rule']} (e.g. {v['case']!r})", file=sys.stderr)
    if violations:
        print(f"{len(violations)} schema violation(s); see {schema.REPORT_FILE}.", file=sys.stderr)
        return 1
    print(f"data matches {schema.SCHEMA_FILE}")
    return 0


def cmd_train(_args: argparse.Namespace) -> int:
    from . import train

    params = load_params()
    declared = schema.load()
    meta, seconds = train.train(data.TRAIN_FILE, params.data.target, params.model, params.data.seed, declared)
    print(f"trained {meta['family']} on {meta['train_rows']} rows in {seconds:.2f} s")
    return 0


def cmd_evaluate(_args: argparse.Namespace) -> int:
    from . import evaluate, train

    params = load_params()
    primary = params.evaluate.metric
    if primary not in evaluate.METRICS:
        print(f"error: evaluate.metric {primary!r} is not one of {', '.join(evaluate.METRICS)}.", file=sys.stderr)
        return 1
    scores = evaluate.evaluate(train.MODEL_FILE, data.TEST_FILE, params.data.target, params.data.seed)
    better = "higher" if evaluate.METRICS[primary].higher_is_better else "lower"
    print(f"{primary} = {scores[primary]} ({better} is better)")
    return 0


def cmd_register(_args: argparse.Namespace) -> int:
    from . import registry

    print(registry.register())
    return 0


def cmd_example(_args: argparse.Namespace) -> int:
    import json

    import pandas as pd

    from .registry import read_meta

    meta = read_meta()
    names = [f["name"] for f in meta["features"]]
    complete = pd.read_csv(data.TEST_FILE).dropna(subset=names)
    if complete.empty:
        raise ValueError(f"every row of {data.TEST_FILE} misses a feature value, so none makes a valid request.")
    row = complete.iloc[0]
    instance = {
        f["name"]: float(row[f["name"]]) if f["kind"] == "numeric" else str(row[f["name"]]) for f in meta["features"]
    }
    print(json.dumps({"instances": [instance]}, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command and run it; expected failures end with one `error:` line and exit code 1."""
    parser = argparse.ArgumentParser(prog="python -m {{ cookiecutter.package }}", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("prepare", help="load the data and write the train/test split").set_defaults(run=cmd_prepare)
    declare = commands.add_parser("schema", help="declare data/schema.yaml by inferring it from the current data")
    declare.add_argument("--force", action="store_true", help="replace an existing schema")
    declare.set_defaults(run=cmd_schema)
    commands.add_parser("validate", help="check the split against data/schema.yaml").set_defaults(run=cmd_validate)
    commands.add_parser("train", help="fit the model on the train split").set_defaults(run=cmd_train)
    commands.add_parser("evaluate", help="score the model on the test split").set_defaults(run=cmd_evaluate)
    commands.add_parser("register", help="store the model in BentoML's model store").set_defaults(run=cmd_register)
    commands.add_parser("example", help="print a /predict request made from the first test row").set_defaults(
        run=cmd_example
    )
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (data.DataError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
