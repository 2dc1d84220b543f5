"""Owner's messages -> conversations -> cleaned multi-turn samples -> a time-ordered split.

The pipeline, one chat at a time (memory holds one chat's messages plus the samples made so
far, so the builder can stream a million stored messages):

1. the turn shaper (``training.turns``), the same code serving uses: message rules (kinds
   without typed text, forwarded, via_bot, empty, ``technical``), cleaning and the privacy
   scrub; sessions, group neighbourhoods, merged turns and exchanges;
2. reply rules and duplicates say why a reply would not be trained on
   (``training.samples.ReplyRules``);
3. over the whole corpus, a share of the short, filler and emoji-only replies is trained on
   anyway, so the targets keep the owner's real length mix (``training.coverage``); the
   other flagged replies stay in the samples as context;
4. windows that fit ``max_seq_tokens`` and end on a trained reply (``training.samples``);
5. the split: the most recent ~``eval_fraction`` of conversations (by start) are held out;
6. each sample's system message gets its memory block (``training.memory``), never showing
   the eval split's lines in a training sample.

Steps 1-2 keep only the conversations' exchanges of the chats read so far, not their
messages, so the builder can stream a million stored messages. Every message left out and
every reply not trained on is counted under its reason in ``DatasetBuild.drops``:
message-level reasons count messages, reply-level reasons count replies (see
``training.samples``); ``DatasetBuild.coverage`` accounts for every owner turn. Message text
is never logged.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from storage.models import MessageRecord
from storage.private_files import open_private
from training.chat_format import ChatMessage, TokenCounter
from training.config import DatasetConfig
from training.coverage import Coverage, Marked, promote
from training.memory import (
    held_out_lines,
    memory_request,
    memory_snippets,
    memory_system,
)
from training.samples import ReplyRules, Sample, Window, targets, windows
from training.turns import (
    Exchange,
    Line,
    chat_conversations,
    exchange_prompts,
    group_segments,
    is_group,
    sessions,
    shape_line,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

__all__ = ["DatasetBuild", "Sample", "build_dataset", "fingerprint", "read_jsonl", "write_jsonl"]


@dataclass(frozen=True)
class DatasetBuild:
    """Result of ``build_dataset``: the split samples and an account of everything left out."""

    train: list[Sample]
    eval: list[Sample]
    drops: dict[str, int]
    conversations: int
    """Conversations that gave at least one sample (a long one gives several windows)."""
    fingerprint: str
    stats: dict[str, int] = field(default_factory=dict)
    dropped_reply_words: dict[str, list[int]] = field(default_factory=dict)
    """Word counts of the owner replies left as context by each rule (the length report)."""
    chat_replies: dict[int, int] = field(default_factory=dict)
    """Owner replies trained on per chat id (which chats the clone learns most from)."""
    eval_fingerprint: str = ""
    """sha256 of the eval set alone; equal values mean comparable eval losses."""
    coverage: Coverage = field(default_factory=Coverage)
    """Where every owner turn went (``training.coverage``)."""


@dataclass(frozen=True)
class _Built:
    chat_id: int
    start: datetime
    windows: list[Window]
    items: list[Exchange]
    covered: set[int]
    too_long: set[int]


def _chat_groups(messages: Iterable[MessageRecord]) -> Iterator[list[MessageRecord]]:
    """Each chat's messages, one chat at a time.

    A list (or other sequence) is grouped here whatever its order. Any other iterable must
    arrive grouped by ascending chat id, as storage reads it (``ORDER BY chat_id, ...``), so
    only one chat is ever held in memory; a chat id that goes back is an error.
    """
    if isinstance(messages, Sequence):
        ids = [m.chat_id for m in messages]
        if any(a > b for a, b in itertools.pairwise(ids)):
            messages = sorted(messages, key=lambda m: m.chat_id)
    current: list[MessageRecord] = []
    for message in messages:
        if current and message.chat_id != current[0].chat_id:
            if message.chat_id < current[0].chat_id:
                raise ValueError(
                    "build_dataset: a streamed corpus must be ordered by chat_id (storage "
                    "order); pass a list to have it grouped"
                )
            yield current
            current = []
        current.append(message)
    if current:
        yield current


def _lines(
    chat: Sequence[MessageRecord], config: DatasetConfig, drops: Counter[str]
) -> list[Line]:
    """The chat's messages shaped into lines, in time order (drops counted)."""
    lines = []
    for message in sorted(chat, key=lambda m: (m.date, m.message_id)):
        line = shape_line(message, config)
        if isinstance(line, Line):
            lines.append(line)
        else:
            drops[line] += 1
    return lines


def _out_of_group_context(lines: Sequence[Line], config: DatasetConfig) -> int:
    """Lines of a group that are in no owner's neighbourhood (never reach the dataset)."""
    by_id = {line.record.message_id: line for line in lines}
    used: set[int] = set()
    for session in sessions(lines, config):
        for segment in group_segments(session, by_id, config.group_context_messages):
            used.update(id(line) for line in segment)
    return len(lines) - len(used)


def _split(built: list[_Built], fraction: float) -> tuple[list[_Built], list[_Built]]:
    """Hold out the most recent conversations (by start): style drifts, and a random split
    would put near-duplicates of one period on both sides. At least one conversation on each
    side when there are two or more."""
    ordered = sorted(built, key=lambda b: (b.start, b.chat_id))  # stable: generation order
    count = len(ordered)
    held_out = round(count * fraction)
    held_out = min(max(held_out, 1), count - 1) if count >= 2 else 0
    return ordered[: count - held_out], ordered[count - held_out :]


def _digest(*splits: tuple[str, Sequence[Sample]]) -> str:
    digest = hashlib.sha256()
    for name, samples in splits:
        digest.update(f"[{name}]\n".encode())
        for sample in samples:
            line = json.dumps(sample, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
            digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


def fingerprint(train: Sequence[Sample], held_out: Sequence[Sample]) -> str:
    """sha256 over the canonical JSON of every sample of both splits (streamed, not joined)."""
    return _digest(("train", train), ("eval", held_out))


def eval_fingerprint(held_out: Sequence[Sample]) -> str:
    """sha256 of the eval set alone."""
    return _digest(("eval", held_out))


def build_dataset(
    messages: Iterable[MessageRecord],
    config: DatasetConfig,
    tokenizer: PreTrainedTokenizerBase | None = None,
    *,
    memory: Memory | None = None,
    held_out: Collection[str] = (),
) -> DatasetBuild:
    """Turn stored messages into train/eval conversation samples (system message first).

    Args:
        messages: the corpus; a list in any order, or an iterable in storage order
            (grouped by ascending chat id), which is consumed one chat at a time.
        config: the dataset rules.
        tokenizer: measures ``max_seq_tokens`` exactly (through ``chat_format.render``);
            without it the ``chars_per_token`` estimate is used.
        memory: searches the owner's messages for the memory block (``config.memory``);
            None finds nothing, so every system message is the bare system prompt.
        held_out: owner lines of an eval set kept from an earlier build (a frozen one):
            training samples' memory blocks never show them, nor this build's eval lines.
    """
    config.validate()
    counter = TokenCounter(config, tokenizer)
    rules = ReplyRules(config)
    drops = rules.drops
    stats: Counter[str] = Counter()
    marked: list[Marked] = []
    for chat in _chat_groups(messages):
        chat_id = chat[0].chat_id
        stats["messages_seen"] += len(chat)
        lines = _lines(chat, config, drops)
        if not lines:
            continue
        stats["chats"] += 1
        stats["messages_kept"] += len(lines)
        stats["sessions"] += sum(1 for _ in sessions(lines, config))
        if is_group(chat_id):
            stats["group_messages_out_of_context"] += _out_of_group_context(lines, config)
        rules.new_chat(chat_id)
        marked.extend(rules.mark(c) for c in chat_conversations(lines, config))

    if config.match_owner_lengths:
        stats["length_match_promoted"] = promote(marked, config, rules.dropped_openers)
    built: list[_Built] = []
    coverage = Coverage()
    for words in rules.dropped_openers:
        coverage.add_dropped("owner_opener", words)
    for conversation in marked:
        rules.settle(conversation)
        made, too_long = windows(conversation.items, counter, drops)
        covered = {index for window in made for index in range(window.start, window.end)}
        part = _Built(
            conversation.chat_id, conversation.start, made, conversation.items, covered, too_long
        )
        if made:
            built.append(part)
        else:
            coverage.add(part.items, covered, too_long, held_out=False)
    del marked

    train_part, eval_part = _split(built, config.eval_fraction)
    held_out_samples = [window.sample for part in eval_part for window in part.windows]
    exclude = held_out_lines(held_out_samples) | frozenset(held_out)
    recalled = Counter[str]()
    train = _with_memory(train_part, config, counter, memory, exclude, recalled)
    held_out_set = _with_memory(eval_part, config, counter, memory, frozenset(), recalled)
    chat_replies: Counter[int] = Counter()
    held_out_ids = {id(part) for part in eval_part}
    for part in train_part + eval_part:
        coverage.add(part.items, part.covered, part.too_long, held_out=id(part) in held_out_ids)
        chat_replies[part.chat_id] += sum(len(targets(w.sample)) for w in part.windows)
    stats.update(rules.stats)
    stats.update({f"memory_{key}": value for key, value in recalled.items()})
    stats["samples_train"] = len(train)
    stats["samples_eval"] = len(held_out_set)
    stats["owner_turns"] = sum(chat_replies.values())
    logger.info(
        "dataset: %d messages, %d samples (%d eval), drops %s",
        stats["messages_seen"],
        len(train) + len(held_out_set),
        len(held_out_set),
        dict(sorted(drops.items())),
    )
    return DatasetBuild(
        train=train,
        eval=held_out_set,
        drops=dict(sorted(drops.items())),
        conversations=len(built),
        fingerprint=fingerprint(train, held_out_set),
        stats=dict(sorted(stats.items())),
        dropped_reply_words={k: list(v) for k, v in sorted(rules.dropped_words.items())},
        chat_replies=dict(chat_replies),
        eval_fingerprint=eval_fingerprint(held_out_set),
        coverage=coverage,
    )


class Memory(Protocol):
    """Searches the owner's messages (``storage.memory.MemoryReader`` does)."""

    def recall(self, stems: Sequence[str], *, before: datetime, limit: int) -> Sequence[Any]:
        """Found messages (with a ``text``), best first."""
        ...


def _with_memory(
    parts: list[_Built],
    config: DatasetConfig,
    counter: TokenCounter,
    memory: Memory | None,
    exclude: Collection[str],
    recalled: Counter[str],
) -> list[Sample]:
    """The parts' samples, each system message with its memory block (``training.memory``).

    The query of a window is its last reply's user turns; the search looks before the
    conversation's start. ``recalled`` counts samples with a block and the lines shown.
    """
    samples: list[Sample] = []
    for part in parts:
        prompts = exchange_prompts(part.items)
        for window in part.windows:
            sample = window.sample
            request = memory_request(prompts[: window.end], part.start, config)
            if memory is not None and request is not None:
                found = memory.recall(request.stems, before=request.before, limit=request.limit)
                system = memory_system(config, counter, [f.text for f in found], exclude)
                shown = len(memory_snippets(system))
                if shown:
                    recalled["samples"] += 1
                    recalled["lines"] += shown
                sample = [{"role": "system", "content": system}, *sample[1:]]
            samples.append(sample)
    return samples


def write_jsonl(path: Path, samples: Iterable[Sample]) -> int:
    """Write one ``{"messages": [...]}`` line per sample (atomically); return the count."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with open_private(tmp) as handle:  # message text: owner-only
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
        parsed: ChatMessage = {"role": message["role"], "content": message["content"]}
        if "weight" in message:
            if message["weight"] not in (0, 1) or message["role"] != "assistant":
                raise ValueError(f"{where}: weight is 0 or 1, on assistant turns only")
            parsed["weight"] = int(message["weight"])
        sample.append(parsed)
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
