"""The owner's feedback as the preference stage reads it: /fix corrections and rated replies."""

from __future__ import annotations

from datetime import UTC, datetime

from storage.corrections import ContextTurn, Correction
from storage.reply_labels import Label, ReplyLabel
from training.config import DatasetConfig
from training.preference_data import PreferenceData, preference_data

NOW = datetime(2026, 12, 1, tzinfo=UTC)
BETTER = "давай в семь у входа, возьму билеты"
CLONE = "As an AI language model I cannot go to the cinema."


def correction(turn_id: int, context: list[ContextTurn], better: str = BETTER) -> Correction:
    return Correction(turn_id, 1, turn_id, context, CLONE, better, NOW)


def rated(turn_id: int, label: Label, reply: str = "sure, see you there") -> ReplyLabel:
    context: list[ContextTurn] = [{"role": "user", "content": f"are you coming, {turn_id}?"}]
    return ReplyLabel(1, turn_id, label, "reaction", context, reply, NOW)


def asked(question: str) -> list[ContextTurn]:
    return [
        {"role": "user", "content": "привет"},
        {"role": "assistant", "content": "привет!"},
        {"role": "user", "content": question},
    ]


def signals(pairs: int, unpaired: int) -> PreferenceData:
    corrections = [
        correction(i, asked(f"пойдём в кино в {i}?"), better=f"{BETTER} {i}") for i in range(pairs)
    ]
    labels = [rated(100 + i, "good" if i % 2 else "bad") for i in range(unpaired)]
    return preference_data(corrections, labels, DatasetConfig(max_seq_tokens=256))
