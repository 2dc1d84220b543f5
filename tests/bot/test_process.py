"""`python -m bot` as deployed: run_polling against the fake Bot API, answer, stop on SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.export_factory import OWNER_ID
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer

ROOT = Path(__file__).resolve().parents[2]


async def test_the_bot_process_answers_and_stops_cleanly(
    fake_telegram: FakeTelegramServer, tmp_path: Path
) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
        "TELEGRAM_BOT_TOKEN": fake_telegram.token,
        "OWNER_ID": str(OWNER_ID),
        "DATA_DIR": str(tmp_path / "data"),
        "TELEGRAM_API_BASE_URL": f"{fake_telegram.url}/bot",
        "TELEGRAM_FILE_BASE_URL": f"{fake_telegram.url}/file/bot",
    }
    log = (tmp_path / "bot.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot"], cwd=tmp_path, env=env, stdout=log, stderr=log
    )
    try:
        await fake_telegram.wait_until(lambda: fake_telegram.calls_to("getUpdates"), timeout=60)
        fake_telegram.send_command(builders.user(OWNER_ID, "Owner"), "/stats")
        stats = await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: str(m.get("text", "")).startswith("Chats:"), timeout=30
        )
        assert "Messages: 0 (0 yours)" in stats["text"]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    output = (tmp_path / "bot.log").read_text()
    assert "Traceback" not in output
    assert (tmp_path / "data" / "tgclone.sqlite3").exists()
    assert fake_telegram.token not in output, "the bot token never reaches the log"
