"""Prepare a run: the stored corpus and the settings become a run directory that the
training process reads (dataset files, frozen eval set, corrections, the owner's feedback for
the preference stage, the resolved config)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from storage.corpus_reader import iter_corpus_rows
from storage.corrections import load_corrections
from storage.db import Database
from storage.memory import MemoryReader
from storage.messages import corpus_counts
from storage.private_files import private_dir, write_private_text
from storage.reply_labels import load_labels
from training.config import TrainConfig
from training.corrections import correction_samples
from training.dataset import DatasetBuild, build_dataset, fingerprint, write_jsonl
from training.frozen_eval import freeze_eval, frozen_lines
from training.preference_data import PreferenceData, preference_data, write_preference_data
from training.settings import PipelineSettings

NOT_ENOUGH_DATA = (
    "Not enough conversations to train on yet ({train} for training, {eval} for evaluation; "
    "at least one of each is needed). Send me a Telegram export with more of your chats."
)


PREFERENCE_FILE = "preference.jsonl"


class RunSetupError(Exception):
    """A run cannot start as configured; the message says what to change."""


class NotEnoughDataError(RunSetupError):
    """The corpus cannot make a train and an eval set yet; the message says what to do."""


@dataclass(frozen=True)
class PreparedRun:
    """A run directory with its dataset files and training config, ready to start."""

    run_dir: Path
    config_path: Path
    log_path: Path
    config: TrainConfig
    build: DatasetBuild
    corrections: int = 0
    """Samples in ``build.train`` made from the owner's /fix corrections."""
    feedback: PreferenceData = field(default_factory=PreferenceData)
    """The owner's signals for the preference stage (written to ``preference.jsonl``)."""


def train_config(settings: PipelineSettings, run_dir: Path, build: DatasetBuild) -> TrainConfig:
    """The run's recipe: the defaults with this deployment's knobs, for its dataset files."""
    try:
        config = settings.train_config(
            run_dir / "train.jsonl",
            run_dir / "eval.jsonl",
            run_dir / "output",
            dataset_fingerprint=build.fingerprint,
            dataset_size=len(build.train) + len(build.eval),
            preference_file=run_dir / PREFERENCE_FILE,
            # The preference stage may cost no more eval_loss than the gate asks a new adapter
            # to gain.
            preference_tolerance=settings.promote_min_improvement,
        )
        config.validate()
    except ValueError as exc:
        raise RunSetupError(f"The training settings do not fit together: {exc}") from exc
    return config


async def build_corpus_dataset(
    db: Database, settings: PipelineSettings, tokenizer: Any = None, *, memory: bool = False
) -> DatasetBuild:
    """Build the dataset from every stored message, streamed, off the event loop.

    With `tokenizer` the windows are fitted to max_length exactly; without it (quick
    figures such as /stats) the builder estimates token counts. With `memory` (and MEMORY
    on) each sample gets its memory block, searched in the database; the lines of the frozen
    eval set stay out of the training samples' blocks.
    """
    config = settings.dataset_config()

    def build() -> DatasetBuild:
        if not (memory and config.memory):
            return build_dataset(iter_corpus_rows(db.path), config, tokenizer=tokenizer)
        held_out = frozen_lines(settings.eval_store)
        with MemoryReader(db.path) as reader:
            return build_dataset(
                iter_corpus_rows(db.path),
                config,
                tokenizer=tokenizer,
                memory=reader,
                held_out=held_out,
            )

    return await asyncio.to_thread(build)


def load_tokenizer(base_model: str) -> Any:
    """The base model's tokenizer (only its small files are fetched, never the weights)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(base_model)
    except (OSError, ValueError) as exc:
        raise RunSetupError(
            f"The tokenizer of BASE_MODEL={base_model!r} could not be loaded ({exc}); set "
            "BASE_MODEL to a model id on the Hugging Face hub or a local model folder."
        ) from exc


async def with_corrections(
    db: Database, settings: PipelineSettings, build: DatasetBuild, tokenizer: Any
) -> tuple[DatasetBuild, int]:
    """The build with one training sample per /fix correction (train split only, never eval)."""
    stored = await load_corrections(db)
    if not stored:
        return build, 0
    config = settings.dataset_config()
    made = await asyncio.to_thread(correction_samples, stored, config, tokenizer)
    train = [*build.train, *made.samples]
    build = replace(
        build,
        train=train,
        drops={**build.drops, **made.drops},
        fingerprint=fingerprint(train, build.eval),
        stats={**build.stats, "corrections": len(made.samples)},
    )
    return build, len(made.samples)


async def owner_feedback(
    db: Database, settings: PipelineSettings, tokenizer: Any
) -> PreferenceData:
    """The owner's corrections and rated replies as preference examples (the run's stage
    decides whether they are enough)."""
    corrections = await load_corrections(db)
    labels = await load_labels(db)
    config = settings.dataset_config()
    return await asyncio.to_thread(preference_data, corrections, labels, config, tokenizer)


async def require_corpus(db: Database) -> None:
    """NotEnoughDataError when nothing of the owner's is stored yet (the first thing to fix)."""
    if (await corpus_counts(db)).owner_messages == 0:
        raise NotEnoughDataError(NOT_ENOUGH_DATA.format(train=0, eval=0))


async def prepare_run(
    db: Database, settings: PipelineSettings, run_id: int, model_path: str | None = None
) -> PreparedRun:
    """Write train.jsonl, eval.jsonl and train_config.json into a fresh run directory.

    ``model_path``: where BASE_MODEL's tokenizer loads from (``training.preflight``'s folder),
    else BASE_MODEL itself.
    """
    await require_corpus(db)
    tokenizer = await asyncio.to_thread(load_tokenizer, model_path or settings.base_model_id())
    build = await build_corpus_dataset(db, settings, tokenizer, memory=True)
    # The eval set stays the same across runs while its replies are still in the data, so
    # eval_loss of successive runs (and the quality gate) compare like with like.
    build = await asyncio.to_thread(freeze_eval, build, settings.eval_store)
    if not build.train or not build.eval:
        raise NotEnoughDataError(
            NOT_ENOUGH_DATA.format(train=len(build.train), eval=len(build.eval))
        )
    build, corrections = await with_corrections(db, settings, build, tokenizer)
    feedback = await owner_feedback(db, settings, tokenizer)
    run_dir = settings.runs_dir / f"run-{run_id:04d}"
    private_dir(run_dir)
    config = train_config(settings, run_dir, build)
    write_jsonl(config.train_file, build.train)
    write_jsonl(config.eval_file, build.eval)
    write_preference_data(run_dir / PREFERENCE_FILE, feedback)
    config_path = run_dir / "train_config.json"
    write_private_text(config_path, json.dumps(config.to_dict(), indent=2))
    return PreparedRun(
        run_dir=run_dir,
        config_path=config_path,
        log_path=run_dir / "train.log",
        config=config,
        build=build,
        corrections=corrections,
        feedback=feedback,
    )
