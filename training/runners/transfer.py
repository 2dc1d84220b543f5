"""What goes to a GPU host and what comes home, as tar files (the SSH runner pipes them)."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

from storage.private_files import open_private
from training.config import TrainConfig
from training.train import ADAPTER_DIRNAME, RESULT_FILE

TRAIN_NAME = "train.jsonl"
EVAL_NAME = "eval.jsonl"
"""The dataset files' names in the host's run directory."""


def pack_run(
    bundle: Path, config: TrainConfig, remote_config: TrainConfig, config_name: str
) -> None:
    """The dataset files and the host's copy of the config, as one tar."""
    body = json.dumps(remote_config.to_dict(), indent=2).encode("utf-8")
    staged = bundle.with_name(config_name + ".host")
    with open_private(staged, "wb") as handle:
        handle.write(body)
    try:
        with open_private(bundle, "wb") as file, tarfile.open(fileobj=file, mode="w") as tar:
            tar.add(config.train_file, arcname=TRAIN_NAME)
            tar.add(config.eval_file, arcname=EVAL_NAME)
            tar.add(staged, arcname=config_name)
            sent = remote_config.preference_file
            if sent is not None and config.preference_file is not None:
                tar.add(config.preference_file, arcname=sent.name)
    finally:
        staged.unlink(missing_ok=True)


def pack_directory(directory: Path, bundle: Path) -> None:
    """The files of ``directory`` (an adapter), as one tar of relative names."""
    with open_private(bundle, "wb") as file, tarfile.open(fileobj=file, mode="w") as tar:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(directory)))


def unpack_run(
    archive: Path, staging: Path, log_path: Path, output_dir: Path, log_name: str
) -> dict[str, Any] | None:
    """Put what came home in place: the log, the adapter, result.json with the local path."""
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(staging, filter="data")
    if (staging / log_name).is_file():
        log_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(staging / log_name, log_path)
    output_dir.mkdir(parents=True, exist_ok=True)
    adapter = staging / "output" / ADAPTER_DIRNAME
    if adapter.is_dir():
        shutil.rmtree(output_dir / ADAPTER_DIRNAME, ignore_errors=True)
        shutil.move(adapter, output_dir / ADAPTER_DIRNAME)
    try:
        result = json.loads((staging / "output" / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict):
        return None
    if result.get("adapter_dir"):
        result["adapter_dir"] = str(output_dir / ADAPTER_DIRNAME)
    (output_dir / RESULT_FILE).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result
