"""The clone's view of a chat: stored turns shaped like the conversations it was trained on."""

from __future__ import annotations

from collections.abc import Sequence

from storage.models import CloneTurn
from training.chat_format import ChatMessage


def history_messages(turns: Sequence[CloneTurn]) -> list[ChatMessage]:
    """User/assistant messages, oldest first, consecutive turns of one role merged.

    Training merged each sender's burst into one turn and started every sample with a user
    turn, so the serving history does the same.
    """
    messages: list[ChatMessage] = []
    for turn in turns:
        if messages and messages[-1]["role"] == turn.role:
            messages[-1] = {
                "role": turn.role,
                "content": f"{messages[-1]['content']}\n{turn.text}",
            }
        else:
            messages.append({"role": turn.role, "content": turn.text})
    while messages and messages[0]["role"] != "user":
        messages.pop(0)
    return messages
