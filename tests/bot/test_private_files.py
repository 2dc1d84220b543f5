"""Everything under DATA_DIR is the owner's alone: 0600 files in 0700 folders, whatever the
umask the bot or the command line was started with, and older files narrowed at start."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.telegram.pending_uploads import start_upload
from storage.db import Database
from storage.private_files import tighten
from tests.export_factory import OWNER_ID, full_export, write_full_export
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer
from tests.tiny_model import TOKENIZER_DIR, torch_env
from training.dataset import write_jsonl
from training.frozen_eval import freeze_eval
from training.preference_data import PreferenceData, write_preference_data
from training.prepare import build_corpus_dataset, prepare_run
from training.quiz_set import QuizItem, save_quiz_set
from training.runners.transfer import pack_directory, pack_run
from training.settings import PipelineSettings

ROOT = Path(__file__).resolve().parents[2]
OWNER = builders.user(OWNER_ID, "Owner")


def _modes(root: Path) -> dict[str, int]:
    """Every file and folder under ``root`` (itself included) with its permission bits."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def _readable_by_others(root: Path) -> dict[str, str]:
    return {name: oct(mode) for name, mode in _modes(root).items() if mode & 0o077}


@pytest.fixture
def lax_umask() -> Iterator[None]:
    """This process creates files as a default desktop session would (0644 / 0755)."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _lax() -> None:
    os.umask(0o022)


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
        **torch_env(),
        **values,
    }


async def test_the_bot_process_keeps_data_dir_owner_only_and_narrows_older_files(
    fake_telegram: FakeTelegramServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    older = data / "runs" / "run-0001"
    older.mkdir(parents=True, mode=0o755)
    (older / "train.jsonl").write_text('{"messages": []}\n')
    os.chmod(data, 0o755)
    os.chmod(data / "runs", 0o755)
    os.chmod(older, 0o755)
    os.chmod(older / "train.jsonl", 0o644)
    env = _env(
        tmp_path,
        TELEGRAM_BOT_TOKEN=fake_telegram.token,
        OWNER_ID=str(OWNER_ID),
        DATA_DIR=str(data),
        TELEGRAM_API_BASE_URL=f"{fake_telegram.url}/bot",
        TELEGRAM_FILE_BASE_URL=f"{fake_telegram.url}/file/bot",
    )
    log_path = tmp_path / "bot.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=log,
            preexec_fn=_lax,
        )
    try:
        await fake_telegram.wait_until(lambda: fake_telegram.calls_to("getUpdates"), timeout=60)
        export = json.dumps(full_export(conversations=3), ensure_ascii=False).encode()
        fake_telegram.send_document(OWNER, export, "result.json")
        await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: str(m.get("text", "")).startswith("Import finished"), timeout=60
        )
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    output = log_path.read_text()
    assert f"made 4 files and folders under {data} owner-only" in output, output
    modes = _modes(data)
    assert modes["tgclone.sqlite3"] == 0o600
    assert modes["uploads"] == 0o700
    assert not _readable_by_others(data)


@pytest.mark.slow
def test_the_command_line_writes_owner_only_files_whatever_its_umask(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    export = write_full_export(tmp_path / "result.json", conversations=6)
    data = tmp_path / "data"
    out = tmp_path / "dataset"
    train = ["train", "--max-steps", "2", "--eval-steps", "1", "--max-length", "256"]
    for args in (["import", str(export)], ["dataset", "build", "--out", str(out)], train):
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli", "--data-dir", str(data), *args],
            cwd=tmp_path,
            env=_env(tmp_path, BASE_MODEL=str(tiny_model_dir)),
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=_lax,
        )
        assert done.returncode == 0, done.stderr
    modes = _modes(data)
    assert modes["tgclone.sqlite3"] == 0o600
    # What the training and judging processes wrote: they inherit the owner-only umask.
    assert {"runs/run-0001/events.jsonl", "runs/run-0001/judge.log"} <= set(modes)
    assert any(name.endswith("adapter_model.safetensors") for name in modes)
    assert not _readable_by_others(data)
    assert {name: oct(mode) for name, mode in _modes(out).items()} == {
        ".": oct(0o700),
        "train.jsonl": oct(0o600),
        "eval.jsonl": oct(0o600),
    }


@pytest.mark.usefixtures("lax_umask")
async def test_private_data_is_created_owner_only_under_any_umask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = PipelineSettings(  # type: ignore[call-arg]
        _env_file=None, data_dir=data, base_model=str(TOKENIZER_DIR)
    )
    db = await Database.open(settings.database_path)
    try:
        from storage.importer import import_export

        await import_export(db, write_full_export(tmp_path / "result.json", conversations=8))
        build = await build_corpus_dataset(db, settings)
        freeze_eval(build, settings.eval_store)
        prepared = await prepare_run(db, settings, 1)
    finally:
        await db.close()
    # What a run writes beside its dataset: the quiz, the feedback, the bundle for a GPU host.
    save_quiz_set(prepared.run_dir, [QuizItem("k", [{"role": "user", "content": "?"}], "a", "b")])
    write_preference_data(prepared.run_dir / "preference.jsonl", PreferenceData())
    pack_run(prepared.run_dir / "bundle.tar", prepared.config, prepared.config, "host.json")
    pack_directory(prepared.run_dir, prepared.run_dir.parent / "adapter.tar")
    write_jsonl(data / "loose.jsonl", [])
    start_upload(data / "uploads", 7, OWNER_ID, 3, "result.json", ".json")
    names = set(_modes(data))
    assert {"tgclone.sqlite3", "runs/run-0001/train.jsonl", "runs/run-0001/eval.jsonl"} <= names
    assert any(name.startswith("eval/") for name in names)
    assert any(name.startswith("uploads/7-") for name in names)
    assert {"runs/run-0001/quiz.jsonl", "runs/run-0001/bundle.tar", "runs/adapter.tar"} <= names
    assert not _readable_by_others(data)


@pytest.mark.usefixtures("lax_umask")
def test_tighten_narrows_only_what_others_may_read(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "runs").mkdir(parents=True)
    (root / "runs" / "a.jsonl").write_text("x")
    (root / "private").write_text("x")
    os.chmod(root / "private", 0o600)
    (root / "runnable").write_text("x")
    os.chmod(root / "runnable", 0o755)
    (root / "link").symlink_to("/etc/hostname")
    assert tighten(root) == 4  # data, runs, runs/a.jsonl, runnable
    modes = _modes(root)
    assert modes["private"] == 0o600 and modes["runs/a.jsonl"] == 0o600
    assert modes["runnable"] == 0o700 and modes["."] == 0o700 and modes["runs"] == 0o700
    assert stat.S_IMODE(os.stat("/etc/hostname").st_mode) & 0o044, "links are not followed"
    assert tighten(root) == 0
