"""One clone trained through the real pipeline, once per test session, for the tests that need
a trained serving adapter but do not test how it was trained (they copy it first)."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

from bot.retrain.service import OwnerHooks
from bot.settings import Settings
from storage.db import Database
from storage.importer import import_export
from storage.models import TrainingRun
from tests.export_factory import write_full_export
from training.pipeline import TrainingPipeline


@dataclass(frozen=True)
class TrainedClone:
    """A data directory whose database holds an imported export and one promoted adapter."""

    data_dir: Path
    run: TrainingRun
    said: list[str]
    """What the owner was told while it trained."""

    def copy_to(self, data_dir: Path) -> Path:
        """A copy of the data directory (the adapter stays where it is, read-only for tests)."""
        shutil.copytree(self.data_dir, data_dir)
        return data_dir


def recipe(data_dir: Path, base_model: Path, **values: object) -> Settings:
    """The tiny model's recipe: a few steps that visibly learn on the synthetic export."""
    base: dict[str, object] = {
        "data_dir": data_dir,
        "base_model": str(base_model),
        "train_eval_steps": 4,
        "train_batch_size": 2,
        "train_grad_accum": 1,
        "train_max_length": 256,
        "train_logging_steps": 1,
        "train_max_steps": 8,
        "train_learning_rate": 5e-3,
    }
    return Settings(_env_file=None, **{**base, **values})  # type: ignore[arg-type]


def train_clone(root: Path, base_model: Path) -> TrainedClone:
    """Import a synthetic export and train its first adapter (promoted: nothing served)."""

    async def go() -> TrainedClone:
        data_dir = root / "data"
        db = await Database.open(data_dir / "tgclone.sqlite3")
        said: list[str] = []

        async def say(text: str) -> None:
            said.append(text)

        try:
            await import_export(db, write_full_export(root / "result.json", conversations=8))
            pipeline = TrainingPipeline(recipe(data_dir, base_model), db, OwnerHooks(say))
            run = await pipeline.run("command")
        finally:
            await db.close()
        assert run is not None and run.status == "succeeded", said
        return TrainedClone(data_dir, run, said)

    return asyncio.run(go())
