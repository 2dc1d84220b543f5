"""The training entry point's command line: ``--config`` plus one flag per TrainConfig field.

python -m training.train --config run_config.json [--learning-rate 2e-4 --epochs 3 ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

from training.config import TrainConfig

# Flag spellings kept short for the common knobs; every other field gets --field-name.
FLAG_ALIASES = {"num_train_epochs": "--epochs"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line: ``--config`` plus one optional flag per scalar ``TrainConfig`` field."""
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__)
    parser.add_argument("--config", type=Path, help="TrainConfig JSON (TrainConfig.to_dict)")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        names = [flag, FLAG_ALIASES[f.name]] if f.name in FLAG_ALIASES else [flag]
        hint = hints[f.name]
        if hint is bool:
            # --padding-free / --no-padding-free; unset keeps the config file's value.
            parser.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction)
        elif hint is int or hint is float:
            parser.add_argument(*names, dest=f.name, type=hint, help=f.name)
        elif hint is Path or hint is str or _is_optional_str(hint):
            parser.add_argument(*names, dest=f.name, help=f.name)
        elif typing.get_origin(hint) is typing.Literal:
            parser.add_argument(*names, dest=f.name, choices=typing.get_args(hint))
        elif f.name == "target_modules":
            parser.add_argument(*names, dest=f.name, help="comma-separated module names")
    return parser.parse_args(argv)


def _is_optional_str(hint: Any) -> bool:
    return isinstance(hint, types.UnionType) and set(typing.get_args(hint)) == {str, type(None)}


def load_config(args: argparse.Namespace) -> TrainConfig:
    """Read the JSON config, apply command-line overrides, validate every setting at once."""
    data: dict[str, Any] = {}
    if args.config is not None:
        data = json.loads(Path(args.config).read_text(encoding="utf-8"))
    for f in dataclasses.fields(TrainConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            data[f.name] = value.split(",") if f.name == "target_modules" else value
    missing = [name for name in ("train_file", "eval_file", "output_dir") if name not in data]
    if missing:
        raise ValueError(f"missing settings {missing}: give them in --config or as flags")
    config = TrainConfig.from_dict(data)
    config.validate()
    return config
