"""Builds the messages of one chat for dataset tests, a minute apart unless told otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from storage.models import MessageRecord
from training.dataset import DatasetBuild
from training.samples import targets

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OWNER_REPLY = "that sounds great, count me in for sure"
PROMPT = "are you coming to the party tonight?"


class Chat:
    """Messages of one chat; ``friend``/``owner`` append one each and return the chat."""

    def __init__(self, chat_id: int = 1, start: datetime = T0) -> None:
        self.chat_id = chat_id
        self.messages: list[MessageRecord] = []
        self.clock = start

    def say(
        self,
        owner: bool,
        text: str,
        after: timedelta = timedelta(minutes=1),
        sender: tuple[int, str] = (2, "Friend"),
        **kw: Any,
    ) -> Chat:
        self.clock += after
        sender_id, name = (1, "Owner") if owner else sender
        self.messages.append(
            MessageRecord(
                chat_id=self.chat_id,
                message_id=len(self.messages) + 1,
                sender_id=sender_id,
                sender_name=name,
                is_owner=owner,
                date=self.clock,
                text=text,
                **kw,
            )
        )
        return self

    def friend(self, text: str = PROMPT, **kw: Any) -> Chat:
        return self.say(False, text, **kw)

    def owner(self, text: str = OWNER_REPLY, **kw: Any) -> Chat:
        return self.say(True, text, **kw)


def all_samples(build: DatasetBuild) -> list[list[dict[str, str]]]:
    """Train then eval samples as plain dicts."""
    return [
        [{"role": m["role"], "content": m["content"]} for m in s] for s in build.train + build.eval
    ]


def contents(build: DatasetBuild, role: str) -> list[str]:
    """Texts of every message of one role (context turns included), in sample order."""
    return [m["content"] for s in all_samples(build) for m in s if m["role"] == role]


def trained(build: DatasetBuild) -> list[str]:
    """Texts of the owner replies trained on (not context), in sample order."""
    return [reply for sample in build.train + build.eval for reply in targets(sample)]
