"""The typing action: shown while the chat sees nothing of the reply, renewed while it lasts."""

from __future__ import annotations

import itertools

import pytest

from bot.replies import pipeline
from bot.settings import Settings
from tests.bot.conftest import ALLOWED_ID, running_clone, settle
from tests.bot.scripted_engine import ScriptedEngine
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer

FRIEND = builders.user(ALLOWED_ID, "Friend")
RENEW = 0.3
REPLY = "a b c d"


@pytest.fixture
def quick_renewals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "TYPING_AFTER_SECONDS", 0.1)
    monkeypatch.setattr(pipeline, "TYPING_RENEW_SECONDS", RENEW)


def _actions(server: FakeTelegramServer) -> list[float]:
    return [at for at, _, _ in server.timed_calls("sendChatAction")]


def _streaming(settings: Settings) -> Settings:
    return settings.model_copy(update={"reply_streaming": True, "stream_edit_interval": 0.05})


@pytest.mark.usefixtures("quick_renewals")
async def test_typing_is_renewed_while_a_reply_is_generated(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    settings = settings.model_copy(update={"reply_streaming": False})
    async with running_clone(settings, lambda _: ScriptedEngine(delay=1.2)) as app:
        fake_telegram.send_text(FRIEND, "hi")
        await fake_telegram.wait_for_message(ALLOWED_ID, lambda m: m["text"] == "re: hi")
        await settle(app, fake_telegram)
    actions = _actions(fake_telegram)
    assert len(actions) >= 3, actions
    gaps = [later - earlier for earlier, later in itertools.pairwise(actions)]
    assert min(gaps) >= RENEW * 0.9
    sent_at = fake_telegram.timed_calls("sendMessage")[0][0]
    assert all(at < sent_at for at in actions), "no typing once the reply is there"


@pytest.mark.usefixtures("quick_renewals")
async def test_a_streamed_reply_shows_typing_only_while_no_text_shows(
    settings: Settings, fake_telegram: FakeTelegramServer
) -> None:
    # Slow to start, then quick words, a long stall, and quick words again.
    engine = ScriptedEngine(delay=0.5, piece_delays=[0.0, 1.0, 0.0], reply=REPLY)
    async with running_clone(_streaming(settings), lambda _: engine) as app:
        fake_telegram.send_text(FRIEND, "hi")
        await fake_telegram.wait_for_message(ALLOWED_ID, lambda m: m["text"] == REPLY)
        await settle(app, fake_telegram)
    drafts = [draft.at for draft in fake_telegram.drafts(ALLOWED_ID)]
    actions = _actions(fake_telegram)
    assert actions and actions[0] < drafts[0], "typing shows before the first words"
    during_words = [at for at in actions if drafts[0] <= at < drafts[0] + RENEW * 0.9]
    assert during_words == [], "no typing right after text has shown"
    assert any(at > drafts[0] + RENEW for at in actions), "typing again during the stall"
