"""The training entry point's command line: ``--config`` plus one flag per knob.

python -m training.train --config run_config.json [--learning-rate 2e-4 --epochs 3 ...]

The flags are the knobs of ``training.settings`` (the same as ``tgclone train``'s); a flag
overrides the config file's value, which is the run's resolved configuration.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from training.config import DatasetConfig, TrainConfig
from training.settings import add_flags, knob_fields

RUN_FILES = ("train_file", "eval_file", "output_dir")
"""The run's own paths: in the config file, or given as flags."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line: ``--config``, the run's paths, and one optional flag per knob."""
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__)
    parser.add_argument("--config", type=Path, help="TrainConfig JSON (TrainConfig.to_dict)")
    for name in RUN_FILES:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=Path)
    add_flags(parser, TrainConfig)
    add_flags(parser, DatasetConfig)
    return parser.parse_args(argv)


def load_config(args: argparse.Namespace) -> TrainConfig:
    """Read the JSON config, apply command-line overrides, validate every setting at once."""
    data: dict[str, Any] = {}
    if args.config is not None:
        data = json.loads(Path(args.config).read_text(encoding="utf-8"))
    for name in RUN_FILES:
        if getattr(args, name) is not None:
            data[name] = getattr(args, name)
    missing = [name for name in RUN_FILES if name not in data]
    if missing:
        raise ValueError(f"missing settings {missing}: give them in --config or as flags")
    config = TrainConfig.from_dict(data)
    dataset = dataclasses.replace(config.dataset, **knob_fields(args, DatasetConfig))
    config = dataclasses.replace(config, dataset=dataset, **knob_fields(args, TrainConfig))
    config.validate()
    return config
