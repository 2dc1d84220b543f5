"""Long-lived objects stay out of full garbage collections, and nothing frozen outlives its use."""

from __future__ import annotations

import gc
from pathlib import Path

from peft import PeftModel
from telegram.ext import Application

from bot.engine.local import CloneEngine
from bot.settings import Settings
from tests.adapters import make_adapter
from tests.bot.conftest import running_clone
from tests.bot.scripted_engine import ScriptedEngine


def _tracked(kind: type) -> list[object]:
    """Instances of `kind` that collections walk (frozen objects are not among them)."""
    return [obj for obj in gc.get_objects() if issubclass(type(obj), kind)]


async def test_a_started_bot_is_frozen_until_it_stops(settings: Settings) -> None:
    async with running_clone(settings, lambda _: ScriptedEngine()) as app:
        assert gc.get_freeze_count() > 0
        assert app not in _tracked(Application)
    assert gc.get_freeze_count() == 0  # stopped: its objects are collectable again


async def test_a_loaded_model_is_frozen_and_a_released_one_is_freed(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    adapter = make_adapter(tiny_model_dir, tmp_path / "a", seed=1, system_prompt="Me.")
    engine = CloneEngine(device="cpu")
    try:
        await engine.load_adapter(adapter)
        assert engine.model_loaded and not _tracked(PeftModel)  # loaded, and frozen
        await engine.release()
        # Unfrozen, every tracked object is visible again: the model is not among them.
        assert gc.get_freeze_count() == 0
        assert not _tracked(PeftModel)
        await engine.restore()
        assert engine.model_loaded and not _tracked(PeftModel)
    finally:
        await engine.close()
    assert gc.get_freeze_count() == 0
