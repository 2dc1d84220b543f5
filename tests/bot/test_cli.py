"""The tgclone command line, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bad_exports import BAD_EXPORTS, BadExport, zipped
from tests.export_factory import write_full_export
from tests.html_exports import FIXTURES, HTML_OWNER_NAME
from tests.tiny_model import TOKENIZER_DIR, torch_env

ROOT = Path(__file__).resolve().parents[2]


def tgclone(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "HOME": str(data_dir),
        "HF_HUB_OFFLINE": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "--data-dir", str(data_dir), *args],
        cwd=data_dir.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_prints_counts_and_is_idempotent(tmp_path: Path) -> None:
    export = write_full_export(tmp_path / "result.json", conversations=4)
    data = tmp_path / "data"
    first = tgclone("import", str(export), data_dir=data)
    assert first.returncode == 0, first.stderr
    assert "Chats: 2" in first.stdout
    assert "Messages: 18 (10 yours)" in first.stdout
    assert "New: 18, already present: 0" in first.stdout
    second = tgclone("import", str(export), data_dir=data)
    assert second.returncode == 0, second.stderr
    assert "New: 0" in second.stdout


def test_import_of_single_chat_export_needs_owner(tmp_path: Path) -> None:
    full = json.loads(write_full_export(tmp_path / "full.json", conversations=2).read_text())
    single = tmp_path / "result.json"
    single.write_text(json.dumps(full["chats"]["list"][0], ensure_ascii=False), "utf-8")
    data = tmp_path / "data"
    refused = tgclone("import", str(single), data_dir=data)
    assert refused.returncode != 0
    assert "--owner-id" in refused.stderr
    accepted = tgclone("import", str(single), "--owner-id", "11111111", data_dir=data)
    assert accepted.returncode == 0, accepted.stderr
    assert "Messages: 5 (3 yours)" in accepted.stdout


def test_import_of_garbage_fails_cleanly(tmp_path: Path) -> None:
    bad = tmp_path / "result.json"
    bad.write_bytes(b"\xff\xfe not json")
    done = tgclone("import", str(bad), data_dir=tmp_path / "data")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: nothing was imported.")
    assert "Traceback" not in done.stderr


def test_dataset_build_writes_jsonl(tmp_path: Path) -> None:
    export = write_full_export(tmp_path / "result.json", conversations=6)
    data = tmp_path / "data"
    assert tgclone("import", str(export), data_dir=data).returncode == 0
    built = tgclone("dataset", "build", "--out", str(tmp_path / "ds"), data_dir=data)
    assert built.returncode == 0, built.stderr
    lines = (tmp_path / "ds" / "train.jsonl").read_text("utf-8").splitlines()
    lines += (tmp_path / "ds" / "eval.jsonl").read_text("utf-8").splitlines()
    samples = [json.loads(line)["messages"] for line in lines]
    assert len(samples) == 12
    assert all(s[0]["role"] == "system" and s[-1]["role"] == "assistant" for s in samples)


def _dump(database: Path) -> list[str]:
    with sqlite3.connect(database) as conn:
        return list(conn.iterdump())


@pytest.mark.parametrize("bad", BAD_EXPORTS, ids=lambda bad: bad.name)
def test_bad_export_is_refused_on_stderr_and_changes_nothing(
    tmp_path: Path, bad: BadExport
) -> None:
    data = tmp_path / "data"
    good = write_full_export(tmp_path / "good.json", conversations=2)
    assert tgclone("import", str(good), data_dir=data).returncode == 0
    before = _dump(data / "tgclone.sqlite3")
    path = tmp_path / bad.file_name
    bad.write(path)
    done = tgclone("import", str(path), "--owner-id", "11111111", data_dir=data)
    assert done.returncode == 1
    error = done.stderr.strip().splitlines()[-1]  # progress lines may come first
    assert error.startswith("error: nothing was imported."), done.stderr
    assert bad.says in error
    assert "Traceback" not in done.stderr
    assert _dump(data / "tgclone.sqlite3") == before


def test_zipped_export_folder_imports(tmp_path: Path) -> None:
    content = write_full_export(tmp_path / "result.json", conversations=2).read_bytes()
    archive = tmp_path / "Telegram export.zip"
    archive.write_bytes(zipped(content))
    done = tgclone("import", str(archive), data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    assert "Messages: 10 (6 yours)" in done.stdout


def test_html_export_needs_the_owner_name(tmp_path: Path) -> None:
    html = FIXTURES / "html" / "chats" / "chat_02" / "messages.html"
    refused = tgclone("import", str(html), data_dir=tmp_path / "data")
    assert refused.returncode == 1
    assert "--owner-name" in refused.stderr
    done = tgclone(
        "import", str(html), "--owner-name", HTML_OWNER_NAME, data_dir=tmp_path / "data"
    )
    assert done.returncode == 0, done.stderr
    assert "yours)" in done.stdout and "(0 yours)" not in done.stdout


def test_dataset_report_counts_with_the_real_tokenizer_and_draws_lengths(tmp_path: Path) -> None:
    export = write_full_export(tmp_path / "result.json", conversations=6)
    data = tmp_path / "data"
    assert tgclone("import", str(export), data_dir=data).returncode == 0
    png = tmp_path / "lengths.png"
    done = tgclone(
        "dataset", "report", "--tokenizer", str(TOKENIZER_DIR), "--png", str(png), data_dir=data
    )
    assert done.returncode == 0, done.stderr
    assert "Samples: " in done.stdout and "(tokenizer)" in done.stdout
    assert png.read_bytes().startswith(b"\x89PNG")


def test_train_and_dataset_build_never_import_telegram(tmp_path: Path) -> None:
    """The training side of the CLI runs without the bot's Telegram side loaded."""
    data = tmp_path / "data"
    export = write_full_export(tmp_path / "result.json", conversations=4)
    assert tgclone("import", str(export), data_dir=data).returncode == 0
    script = (
        "import sys; from bot.cli import main\n"
        f"build = main(['--data-dir', {str(data)!r}, 'dataset', 'build', '--out', "
        f"{str(tmp_path / 'ds')!r}, '--min-reply-words', '2'])\n"
        # No tokenizer of BASE_MODEL offline: the run stops at its preparation, once every
        # module of the training path is loaded.
        f"train = main(['--data-dir', {str(data)!r}, 'train', '--max-steps', '1', "
        "'--eval-steps', '1'])\n"
        "print(build, train, sorted(m for m in sys.modules if m.split('.')[0] == 'telegram'"
        " or m.startswith(('bot.telegram', 'bot.handlers', 'bot.app'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "HF_HUB_OFFLINE": "1",
            **torch_env(),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    *_, last = done.stdout.strip().splitlines()
    assert last == "0 1 []", done.stdout
    assert "did not start" in done.stdout
