"""Settings: parsing, and a bot that will not start without what it needs."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.retrain.schedule import parse_cron
from bot.settings import Settings, SettingsError, load_settings
from training.settings import all_knobs

ROOT = Path(__file__).resolve().parents[2]


def test_allowed_ids_parse_from_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_USER_IDS", "1, 2;3")
    assert load_settings().allowed_user_ids == frozenset({1, 2, 3})


def test_allowed_ids_reject_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_USER_IDS", "alice")
    with pytest.raises(SettingsError, match="ALLOWED_USER_IDS"):
        load_settings()


def test_bad_cron_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRAIN_CRON", "every sunday")
    with pytest.raises(SettingsError, match="RETRAIN_CRON"):
        parse_cron(load_settings())


@pytest.mark.parametrize(
    ("line", "days"),
    [
        ("0 4 * * 0", {"Sunday"}),
        ("0 4 * * 7", {"Sunday"}),
        ("0 4 * * 1-5", {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}),
        ("0 4 * * 0-2", {"Sunday", "Monday", "Tuesday"}),
        ("0 4 * * */3", {"Sunday", "Wednesday", "Saturday"}),
        ("0 4 * * sat,sun", {"Saturday", "Sunday"}),
        (
            "0 4 * * *",
            {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"},
        ),
    ],
)
def test_cron_days_mean_what_crontab_means(
    line: str, days: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRAIN_CRON", line)
    trigger = parse_cron(load_settings())
    assert trigger is not None
    fired: set[str] = set()
    when = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday
    for _ in range(14):
        fire = trigger.get_next_fire_time(None, when)
        assert fire is not None and fire.hour == 4
        fired.add(fire.strftime("%A"))
        when = fire + timedelta(minutes=1)
    assert fired == days


def test_cron_with_wrong_field_count_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRAIN_CRON", "0 4 * *")
    with pytest.raises(SettingsError, match="5 fields"):
        parse_cron(load_settings())


def test_bot_without_token_exits_with_what_to_set(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "TELEGRAM_BOT_TOKEN" in done.stderr
    assert "OWNER_ID" in done.stderr
    assert not (tmp_path / "tgclone.sqlite3").exists()


def test_bot_without_owner_exits(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TELEGRAM_BOT_TOKEN": "1:x", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "OWNER_ID" in done.stderr and "TELEGRAM_BOT_TOKEN" not in done.stderr


def test_fresh_env_file_from_the_example_names_what_to_set(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text("utf-8"), "utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "TELEGRAM_BOT_TOKEN" in done.stderr and "OWNER_ID" in done.stderr
    assert "Traceback" not in done.stderr


def test_every_setting_is_documented() -> None:
    example = (ROOT / ".env.example").read_text("utf-8")
    names = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE))
    knobs = {knob.env for knob in all_knobs()}
    settings = {name.upper() for name in Settings.model_fields}
    # The bot's own settings are listed in .env.example...
    undocumented = sorted(settings - knobs - names)
    assert not undocumented, f"add these to .env.example: {undocumented}"
    # ...the knobs by `tgclone train --help` (from their dataclass docstrings), and every
    # name .env.example shows is a real setting.
    assert all(knob.help for knob in all_knobs())
    compose = (ROOT / "docker-compose.yml").read_text("utf-8")
    stale = sorted(name for name in names - settings if "${" + name not in compose)
    assert not stale, f"not settings of tgclone nor of docker-compose.yml: {stale}"


REMOVED_SETTINGS = {"HISTORY_TURNS": "the serving window is the adapter's (clone.json)"}


def test_an_env_file_of_the_previous_release_keeps_working(tmp_path: Path) -> None:
    """Every setting the previous .env.example showed (its examples uncommented) still loads
    under the same name with the same value, except the ones removed on purpose."""
    old = (ROOT / "tests" / "fixtures" / "env" / "env.example.2026-12-06").read_text("utf-8")
    lines = {}
    for match in re.finditer(r"^#? ?([A-Z][A-Z0-9_]*)=(.+)$", old, flags=re.MULTILINE):
        name, value = match.groups()
        if "${" not in value and not name.startswith("VLLM_"):
            lines[name] = value.strip()
    lines.update(ENGINE="transformers", WEBHOOK_URL="", OPENAI_DATA_DIR="")
    env = tmp_path / ".env"
    env.write_text("".join(f"{k}={v}\n" for k, v in lines.items()), "utf-8")
    settings = Settings(_env_file=env)  # type: ignore[call-arg]
    for name, value in lines.items():
        if name in REMOVED_SETTINGS:
            assert name.lower() not in Settings.model_fields
            continue
        loaded = getattr(settings, name.lower())
        shown = ",".join(sorted(map(str, loaded))) if isinstance(loaded, frozenset) else loaded
        if isinstance(loaded, Path):
            shown, value = str(loaded), str(Path(value))
        number = _number(value)
        same_number = number is not None and _number(shown) == number
        assert str(shown).lower() == value.lower() or same_number, name


def _number(value: object) -> float | None:
    try:
        return float(str(value))
    except ValueError:
        return None
