"""The `tgclone` command line: each subcommand is one typed function below."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.process.logs import configure_logging, redact_secrets
from bot.settings import Settings, SettingsError, load_settings
from storage.private_files import OWNER_ONLY_UMASK, private_dir, tighten
from training.config import DatasetConfig, TrainConfig
from training.settings import add_flags, flag_values

logger = logging.getLogger(__name__)


def run_bot(settings: Settings) -> int:
    """Run the bot until interrupted: long polling, or a webhook when WEBHOOK_URL is set."""
    missing = settings.missing_for_bot()
    if missing:
        print(
            "tgclone cannot start; set these in the environment or in .env:\n  "
            + "\n  ".join(missing),
            file=sys.stderr,
        )
        return 2
    from bot.app import build_application
    from bot.process.signals import stop_on_signals
    from bot.telegram.const import ALLOWED_UPDATES
    from bot.telegram.webhook import webhook_options

    application = build_application(settings)
    stop_on_signals(application)
    options = webhook_options(settings)
    if options is None:
        application.run_polling(allowed_updates=ALLOWED_UPDATES, stop_signals=None)
        return 0
    logger.info("webhook mode: listening on %s:%s", options.listen, options.port)
    application.run_webhook(
        listen=options.listen,
        port=options.port,
        url_path=options.url_path,
        webhook_url=options.webhook_url,
        secret_token=options.secret_token,
        allowed_updates=ALLOWED_UPDATES,
        stop_signals=None,
    )
    return 0


def import_file(
    settings: Settings, path: Path, owner_id: int | None, owner_name: str | None
) -> int:
    """Import a Telegram Desktop export (result.json, a .zip of the folder, or HTML)."""
    from bot.telegram.import_status import TerminalProgress, format_import_report
    from storage.db import Database
    from storage.errors import ExportError
    from storage.importer import import_export

    if not path.is_file():
        print(f"error: {path} is not a file", file=sys.stderr)
        return 2

    async def go() -> int:
        db = await Database.open(settings.database_path)
        progress = TerminalProgress()
        try:
            report = await import_export(
                db,
                path,
                owner_id=owner_id or settings.owner_id or None,
                owner_name=owner_name,
                file_name=path.name,
                local_tz=settings.zone,
                progress=progress,
            )
        except ExportError as exc:
            progress.close()
            print(f"error: nothing was imported. {exc}", file=sys.stderr)
            return 1
        finally:
            await db.close()
        progress.close()
        print(format_import_report(report))
        return 0

    return asyncio.run(go())


def dataset_build(settings: Settings, out_dir: Path) -> int:
    """Build the training dataset from the database and write train/eval JSONL."""
    from storage.db import Database
    from training.dataset import write_jsonl
    from training.prepare import build_corpus_dataset

    counter = _optional_tokenizer(settings.base_model_id())

    async def go() -> int:
        db = await Database.open(settings.database_path)
        try:
            build = await build_corpus_dataset(db, settings, counter, memory=True)
        finally:
            await db.close()
        private_dir(out_dir)
        write_jsonl(out_dir / "train.jsonl", build.train)
        write_jsonl(out_dir / "eval.jsonl", build.eval)
        print(f"conversations: {build.conversations}")
        print(f"samples: {len(build.train)} train, {len(build.eval)} eval")
        print(f"fingerprint: {build.fingerprint}")
        for reason, count in sorted(build.drops.items()):
            print(f"dropped {reason}: {count}")
        print(f"written to {out_dir}")
        return 0

    return asyncio.run(go())


def dataset_report(settings: Settings, tokenizer: str | None, png: Path | None) -> int:
    """Print what the dataset holds and why items were left out; optionally save a histogram."""
    from storage.db import Database
    from storage.messages import chat_titles
    from training.prepare import build_corpus_dataset
    from training.report import build_report, format_report, save_length_histogram

    counter = _optional_tokenizer(tokenizer or settings.base_model_id())

    async def go() -> int:
        db = await Database.open(settings.database_path)
        try:
            build = await build_corpus_dataset(db, settings, counter, memory=True)
            titles = await chat_titles(db)
        finally:
            await db.close()
        report = build_report(build, settings.dataset_config(), counter, chat_titles=titles)
        print(format_report(report))
        if png is not None:
            print(f"histogram: {save_length_histogram(report, png)}")
        return 0

    return asyncio.run(go())


def _optional_tokenizer(source: str) -> Any:
    """The tokenizer that counts tokens, or None (counts are then estimates) if unavailable.

    Where it is comes first (``training.preflight``, seconds at most without a network): a
    model missing offline costs no hub retries, only one line saying the counts are estimates.
    """
    from training.preflight import ModelUnavailableError, locate_model
    from training.prepare import RunSetupError, load_tokenizer

    try:
        return load_tokenizer(locate_model(source, "tokenizer").path)
    except (ModelUnavailableError, RunSetupError) as exc:
        print(f"note: token counts are estimates: {exc}")
        return None


def train(settings: Settings) -> int:
    """Train an adapter now, in the foreground, from everything stored; promote it on success."""
    from bot.retrain.service import OwnerHooks
    from storage.db import Database
    from training.pipeline import TrainingPipeline

    async def say(text: str) -> None:
        print(text, flush=True)

    async def print_event(event: dict[str, Any]) -> None:
        print(json.dumps(event), flush=True)

    async def go() -> int:
        db = await Database.open(settings.database_path)
        try:
            hooks = OwnerHooks(say, on_event=print_event)
            run = await TrainingPipeline(settings, db, hooks).run("cli")
        finally:
            await db.close()
        return 0 if run is not None and run.status == "succeeded" else 1

    return asyncio.run(go())


def keep_private(data_dir: Path) -> None:
    """Narrow what an earlier version left group- or world-readable under DATA_DIR."""
    changed = tighten(data_dir)
    if changed:
        logger.warning(
            "made %d files and folders under %s owner-only (they were readable by others)",
            changed,
            data_dir,
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tgclone", description=__doc__)
    parser.add_argument("--data-dir", type=Path, help="overrides DATA_DIR")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help=run_bot.__doc__)
    imp = sub.add_parser("import", help=import_file.__doc__)
    imp.add_argument("path", type=Path)
    imp.add_argument("--owner-id", type=int, help="your Telegram user id (single-chat exports)")
    imp.add_argument("--owner-name", help="your name as an HTML export shows it")
    dataset = sub.add_parser("dataset", help="training dataset commands")
    dataset_sub = dataset.add_subparsers(dest="dataset_command", required=True)
    build = dataset_sub.add_parser("build", help=dataset_build.__doc__)
    build.add_argument("--out", type=Path, help="output folder (default DATA_DIR/dataset)")
    report = dataset_sub.add_parser("report", help=dataset_report.__doc__)
    report.add_argument("--tokenizer", help="tokenizer to count with (default BASE_MODEL's)")
    report.add_argument("--png", type=Path, help="save the reply-length histogram here")
    add_flags(build, DatasetConfig)
    add_flags(report, DatasetConfig)
    tr = sub.add_parser("train", help=train.__doc__)
    add_flags(tr, TrainConfig)
    add_flags(tr, DatasetConfig)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tgclone` console script."""
    # Everything this process and its children create is the owner's alone (see
    # storage.private_files): set before any file is written.
    os.umask(OWNER_ONLY_UMASK)
    args = _parser().parse_args(argv)
    # The bot logs what it does; one-shot commands print their result and log only problems.
    quiet = logging.INFO if args.command == "run" else logging.WARNING
    configure_logging(logging.DEBUG if args.verbose else quiet)
    overrides: dict[str, object] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    # Flags win over the environment: the knobs' one precedence order (training/settings.py).
    if args.command in ("train", "dataset"):
        overrides.update(flag_values(args, DatasetConfig))
    if args.command == "train":
        overrides.update(flag_values(args, TrainConfig))
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    redact_secrets(*settings.secrets())
    keep_private(settings.data_dir)
    if args.command == "run":
        return run_bot(settings)
    if args.command == "import":
        return import_file(settings, args.path, args.owner_id, args.owner_name)
    if args.command == "dataset" and args.dataset_command == "report":
        return dataset_report(settings, args.tokenizer, args.png)
    if args.command == "dataset":
        return dataset_build(settings, args.out or settings.data_dir / "dataset")
    if args.command == "train":
        return train(settings)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
