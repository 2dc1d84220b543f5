"""Owner's messages -> sessions -> conversations -> cleaned multi-turn samples.

Every message or turn left out is counted under its reason in ``DatasetBuild.drops``:
message-level reasons (the kind, forwarded, via_bot, empty) count messages; reply-level
reasons (filler, emoji_only, short_reply, no_prompt) count owner turns; prompt_without_reply
counts user turns that lost their answer. Message text is never logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from storage.models import MessageRecord
from training.chat_format import ChatMessage, Role, build_messages
from training.config import DatasetConfig
from training.filters import clean_text, message_drop_reason, reply_drop_reason

logger = logging.getLogger(__name__)

Sample = list[ChatMessage]


@dataclass(frozen=True)
class DatasetBuild:
    """Result of ``build_dataset``: the split samples and an account of everything left out."""

    train: list[Sample]
    eval: list[Sample]
    drops: dict[str, int]
    conversations: int
    fingerprint: str
    stats: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Conversation:
    chat_id: int
    start: datetime
    turns: list[ChatMessage]


def _sessions(
    messages: Sequence[MessageRecord], config: DatasetConfig
) -> list[list[MessageRecord]]:
    """Cut one chat's kept messages (sorted by date) where the silence exceeds the gap."""
    sessions: list[list[MessageRecord]] = []
    previous: MessageRecord | None = None
    for message in messages:
        # Compare whole timedeltas: `.seconds` would ignore the days of a long silence.
        if previous is None or message.date - previous.date > config.session_gap:
            sessions.append([])
        sessions[-1].append(message)
        previous = message
    return sessions


def _merge_turns(session: Sequence[MessageRecord]) -> list[ChatMessage]:
    """Consecutive messages of one side become one turn, joined with newlines.

    In groups, messages of different non-owners in a row form one user turn.
    """
    turns: list[ChatMessage] = []
    for message in session:
        role: Role = "assistant" if message.is_owner else "user"
        text = clean_text(message.text)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += "\n" + text
        else:
            turns.append({"role": role, "content": text})
    return turns


def _clean_turns(
    turns: Sequence[ChatMessage], config: DatasetConfig, drops: Counter[str]
) -> list[ChatMessage]:
    """Keep (user, owner) pairs whose owner reply teaches style; end on an owner turn.

    A dropped owner reply takes its user turn with it rather than leaving two user turns in
    a row: the owner never answered that prompt, so the clone must not learn to answer it as
    if merged into the next one.
    """
    kept: list[ChatMessage] = []
    pending_prompt: ChatMessage | None = None
    for turn in turns:
        if turn["role"] == "user":
            pending_prompt = turn
            continue
        if pending_prompt is None:
            drops["no_prompt"] += 1
            continue
        reason = reply_drop_reason(turn["content"], config)
        if reason is None:
            kept += [pending_prompt, turn]
        else:
            drops[reason] += 1
            drops["prompt_without_reply"] += 1
        pending_prompt = None
    if pending_prompt is not None:
        drops["prompt_without_reply"] += 1
    return kept


def _windows(turns: list[ChatMessage], max_pairs: int) -> list[list[ChatMessage]]:
    size = 2 * max_pairs
    return [turns[i : i + size] for i in range(0, len(turns), size)]


def _eval_score(key: tuple[int, datetime], seed: int) -> float:
    text = f"{seed}:{key[0]}:{key[1].isoformat()}"
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / 16**12


def _split(
    conversations: Sequence[_Conversation], config: DatasetConfig
) -> tuple[list[_Conversation], list[_Conversation]]:
    """Deterministic split by conversation (all windows of one go to the same side); at least
    one conversation on each side when there are two or more."""
    keys = sorted({(c.chat_id, c.start) for c in conversations})
    scores = {key: _eval_score(key, config.split_seed) for key in keys}
    eval_keys = {key for key in keys if scores[key] < config.eval_fraction}
    if len(keys) >= 2:
        if not eval_keys:
            eval_keys.add(min(keys, key=scores.__getitem__))
        if len(eval_keys) == len(keys):
            eval_keys.discard(max(keys, key=scores.__getitem__))
    train = [c for c in conversations if (c.chat_id, c.start) not in eval_keys]
    held_out = [c for c in conversations if (c.chat_id, c.start) in eval_keys]
    return train, held_out


def fingerprint(train: Sequence[Sample], held_out: Sequence[Sample]) -> str:
    """sha256 of the canonical JSON of both splits."""
    canonical = json.dumps(
        {"train": train, "eval": held_out},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def build_dataset(messages: Iterable[MessageRecord], config: DatasetConfig) -> DatasetBuild:
    """Turn stored messages into train/eval conversation samples (system prompt first)."""
    config.validate()
    drops: Counter[str] = Counter()
    per_chat: dict[int, list[MessageRecord]] = defaultdict(list)
    seen = 0
    for message in messages:
        seen += 1
        reason = message_drop_reason(message)
        if reason is None:
            per_chat[message.chat_id].append(message)
        else:
            drops[reason] += 1

    conversations: list[_Conversation] = []
    sessions_total = 0
    for chat_id in sorted(per_chat):
        chat = sorted(per_chat[chat_id], key=lambda m: (m.date, m.message_id))
        for session in _sessions(chat, config):
            sessions_total += 1
            turns = _clean_turns(_merge_turns(session), config, drops)
            for window in _windows(turns, config.max_pairs_per_sample):
                conversations.append(_Conversation(chat_id, session[0].date, window))

    train_convs, eval_convs = _split(conversations, config)
    train = [build_messages(config.system_prompt, c.turns) for c in train_convs]
    held_out = [build_messages(config.system_prompt, c.turns) for c in eval_convs]
    pairs = sum(len(c.turns) // 2 for c in conversations)
    stats = {
        "messages_seen": seen,
        "messages_kept": sum(len(chat) for chat in per_chat.values()),
        "chats": len(per_chat),
        "sessions": sessions_total,
        "samples_train": len(train),
        "samples_eval": len(held_out),
        "owner_turns": pairs,
    }
    logger.info(
        "dataset: %d messages, %d samples (%d eval), drops %s",
        seen,
        len(conversations),
        len(held_out),
        dict(sorted(drops.items())),
    )
    return DatasetBuild(
        train=train,
        eval=held_out,
        drops=dict(sorted(drops.items())),
        conversations=len(conversations),
        fingerprint=fingerprint(train, held_out),
        stats=stats,
    )


def write_jsonl(path: Path, samples: Iterable[Sample]) -> int:
    """Write one ``{"messages": [...]}`` line per sample (atomically); return the count."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for sample in samples:
            handle.write(json.dumps({"messages": sample}, ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


def _parse_sample(data: Any, where: str) -> Sample:
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise ValueError(f"{where}: expected an object with a 'messages' list")
    sample: Sample = []
    for message in data["messages"]:
        if (
            not isinstance(message, dict)
            or message.get("role") not in ("system", "user", "assistant")
            or not isinstance(message.get("content"), str)
        ):
            raise ValueError(
                f"{where}: each message needs a role (system/user/assistant) and text"
            )
        sample.append({"role": message["role"], "content": message["content"]})
    return sample


def read_jsonl(path: Path) -> list[Sample]:
    """Read samples written by ``write_jsonl``; errors name the file and line."""
    samples = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not JSON ({exc.msg})") from exc
            samples.append(_parse_sample(data, where))
    return samples
