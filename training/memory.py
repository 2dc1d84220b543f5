"""The memory block: the owner's own earlier words that fit the conversation, in the system
message, built the same way for a training sample and for a serving prompt.

A LoRA adapter learns how its owner writes, not what they know or plan; the owner's own
messages about the same things, retrieved, carry that. For the reply that ends a sample (or
the reply serving is about to write):

1. ``memory_request``: the content words (``training.words``) of the last ``QUERY_TURNS``
   user turns, newest first, become at most ``MAX_QUERY_STEMS`` stems; the search looks only
   at messages older than the conversation's start (so never at this conversation, never at
   anything newer than the message being answered) and asks for a few more candidates than
   ``memory_k``, since some shape to nothing or are left out;
2. the search itself is storage's (``storage.memory``: BM25 over the FTS5 index of the owner's
   messages);
3. ``memory_system``: the found messages, shaped like any turn (control strings removed,
   private data scrubbed), one line each, best first, as many as ``memory_k`` and
   ``memory_reserve`` allow, follow the system prompt under ``MEMORY_HEADER``. With
   nothing found the system message is the system prompt alone.

Every sample and every prompt keeps ``memory_budget_tokens`` free for the block
(``memory_reserve``), so the turns a window holds never depend on what the search found, and
a serving prompt stays the prefix of the training sample of the same turns. Training samples
never show the owner's words from the eval split (``exclude``), so evaluation does not leak.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from training.chat_format import ChatMessage, TokenCounter
from training.config import DatasetConfig
from training.turns import shape_text
from training.words import content_words, stem, truncate

MEMORY_HEADER = "Things you have said before:"
QUERY_TURNS = 2
"""The user turns (the one answered and the one before) whose words make the query."""
MAX_QUERY_STEMS = 8
CANDIDATES_PER_SNIPPET = 3
MAX_SNIPPET_CHARS = 300
_SEPARATOR = "\n\n" + MEMORY_HEADER + "\n"
_CUT = "…"


@dataclass(frozen=True)
class MemoryRequest:
    """What to search the owner's messages for, for one reply."""

    stems: tuple[str, ...]
    before: datetime
    """The conversation's start: only older messages are searched."""
    limit: int
    """Candidates to fetch (more than ``memory_k``: some shape to nothing)."""


def memory_reserve(config: DatasetConfig) -> int:
    """Tokens every sample and prompt keeps free for the memory block: its budget, at most a
    quarter of the sample (a short ``max_seq_tokens`` keeps most of its room for turns)."""
    if not config.memory:
        return 0
    return min(config.memory_budget_tokens, config.max_seq_tokens // 4)


def query_stems(texts: Sequence[str]) -> tuple[str, ...]:
    """Stems of the texts' content words, the newest text's first, at most MAX_QUERY_STEMS.

    A stem with ё is searched as typed and with е (the index keeps the letter as typed).
    """
    stems: list[str] = []
    for text in reversed(texts):
        for word in content_words(text):
            for variant in (truncate(word), stem(word)):
                if variant not in stems:
                    stems.append(variant)
    return tuple(stems[:MAX_QUERY_STEMS])


def memory_request(
    prompts: Sequence[str], start: datetime, config: DatasetConfig
) -> MemoryRequest | None:
    """The search for the reply to the last of ``prompts`` (the conversation's user turns, in
    order) in a conversation that started at ``start``; None without memory or query words."""
    if not config.memory:
        return None
    stems = query_stems(prompts[-QUERY_TURNS:])
    if not stems:
        return None
    return MemoryRequest(stems, start, config.memory_k * CANDIDATES_PER_SNIPPET)


def snippet(text: str, config: DatasetConfig) -> str:
    """A found message as the block shows it: shaped, on one line, at most MAX_SNIPPET_CHARS."""
    lines = [line.strip() for line in shape_text(text, config).split("\n")]
    joined = " / ".join(line for line in lines if line)
    if len(joined) > MAX_SNIPPET_CHARS:
        joined = joined[: MAX_SNIPPET_CHARS - len(_CUT)].rstrip() + _CUT
    return joined


def _with_block(system_prompt: str, snippets: Sequence[str]) -> str:
    return system_prompt + _SEPARATOR + "\n".join(f"- {line}" for line in snippets)


def memory_system(
    config: DatasetConfig,
    counter: TokenCounter,
    recalled: Iterable[str],
    exclude: Collection[str] = (),
) -> str:
    """The system message of a sample or prompt: the system prompt and the memory block.

    Args:
        config: the dataset rules (the serving adapter's clone.json at serving).
        counter: measures the block against ``memory_budget_tokens``.
        recalled: the found messages' stored text, best first.
        exclude: owner lines never to show (``held_out_lines`` of the eval split).
    """
    system = config.system_prompt
    if not config.memory:
        return system
    budget = memory_reserve(config)
    shown: list[str] = []
    for text in recalled:
        if len(shown) >= config.memory_k:
            break
        line = snippet(text, config)
        if not line or line in shown or _excluded(text, config, exclude):
            continue
        candidate = _with_block(config.system_prompt, [*shown, line])
        if counter.message("system", candidate) - counter.system > budget:
            continue
        shown.append(line)
        system = candidate
    return system


def _excluded(text: str, config: DatasetConfig, exclude: Collection[str]) -> bool:
    if not exclude:
        return False
    shaped = shape_text(text, config)
    return shaped in exclude or any(line in exclude for line in shaped.split("\n"))


def held_out_lines(samples: Iterable[Sequence[ChatMessage]]) -> frozenset[str]:
    """Every owner turn of the samples, whole and line by line (what ``exclude`` takes)."""
    lines: set[str] = set()
    for sample in samples:
        for message in sample:
            if message["role"] == "assistant":
                lines.add(message["content"])
                lines.update(message["content"].split("\n"))
    lines.discard("")
    return frozenset(lines)


def memory_snippets(system: str) -> list[str]:
    """The lines of a system message's memory block ([] without one)."""
    _, separator, block = system.rpartition(_SEPARATOR)
    if not separator:
        return []
    return [line[2:] for line in block.split("\n") if line.startswith("- ")]


def system_prompt_of(system: str) -> str:
    """The system prompt a system message starts with (the message less its memory block)."""
    head, separator, _ = system.rpartition(_SEPARATOR)
    return head if separator else system
