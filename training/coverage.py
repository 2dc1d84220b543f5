"""Which owner turns are trained on, so that the targets sound like the owner, and an account
of where every owner turn went.

Most owners write short: in real personal chats about 60% of their turns have fewer than five
words. The reply rules (``training.filters``) call such turns ``short_reply``, ``filler`` or
``emoji_only``; left alone they would never be trained on, and the clone would learn from a
version of the owner who writes twice as long. With ``match_owner_lengths`` (the default) a
deterministic share of them is trained on instead, chosen per length so that the lengths of
the training targets follow the owner's real ones:

* ``alpha`` is the share of the owner's other turns that are targets (the rest are openers,
  duplicates, ...: context, whatever their length);
* for every length ``w`` (in words), ``round(alpha * n_w) - t_w`` of the flagged turns of that
  length are trained on, where ``n_w`` counts all the owner's turns of that length and
  ``t_w`` those already targets; which ones is decided by a hash of (``sample_seed``, chat,
  message), so a build is reproducible and does not depend on the order chats are read in.
  A flagged reply that repeats an earlier exchange of its chat is never chosen.

The others stay in their samples as context (weight 0). ``Coverage`` counts every owner turn
once: trained on (train split), held out (eval split), context only, or dropped, with the
reason (``owner_opener``: ``owner_starts="drop"``; ``too_long``: its exchange alone exceeds
``max_seq_tokens``; ``outside_window``: a context turn no sample holds, after a
conversation's last target or between two windows).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from training.config import DatasetConfig
from training.turns import Exchange

PROMOTABLE = frozenset({"filler", "emoji_only", "short_reply"})
"""Reply-rule reasons whose turns may be trained on to keep the owner's length mix."""


@dataclass
class Marked:
    """One conversation's exchanges and why each reply is not a target (None: it is)."""

    chat_id: int
    start: datetime
    items: list[Exchange]
    reasons: list[str | None]
    repeats: set[int] = field(default_factory=set)
    """Indices of flagged replies that repeat an earlier exchange: never promoted."""


def draw(seed: int, chat_id: int, anchor: int) -> float:
    """A deterministic number in [0, 1) for one owner turn."""
    key = f"{seed}:{chat_id}:{anchor}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64


def promote(
    conversations: Sequence[Marked], config: DatasetConfig, extra_turns: Sequence[int]
) -> int:
    """Clear the reason of the flagged turns chosen to train on (see the module docstring).

    ``extra_turns``: word counts of owner turns in no exchange (dropped openers): part of the
    owner's real lengths. Returns how many turns were promoted.
    """
    real: Counter[int] = Counter(extra_turns)
    targets: Counter[int] = Counter()
    candidates: dict[int, list[tuple[float, Marked, int]]] = defaultdict(list)
    others = len(extra_turns)
    for conversation in conversations:
        for index, (item, reason) in enumerate(
            zip(conversation.items, conversation.reasons, strict=True)
        ):
            words = item.reply.words
            real[words] += 1
            if reason in PROMOTABLE:
                if index in conversation.repeats:
                    continue
                key = draw(config.sample_seed, conversation.chat_id, item.reply.anchor)
                candidates[words].append((key, conversation, index))
                continue
            others += 1
            if reason is None:
                targets[words] += 1
    alpha = sum(targets.values()) / others if others else 1.0
    promoted = 0
    for words, found in candidates.items():
        wanted = round(alpha * real[words]) - targets[words]
        found.sort(key=lambda entry: (entry[0], entry[1].chat_id, entry[2]))
        for _, conversation, index in found[: max(0, wanted)]:
            conversation.reasons[index] = None
            promoted += 1
    return promoted


@dataclass
class Coverage:
    """Where the owner's turns went: trained on, held out, context only, dropped (why)."""

    trained: int = 0
    held_out: int = 0
    context: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    real_words: list[int] = field(default_factory=list)
    """Word counts of all the owner's turns (merged bursts)."""
    target_words: list[int] = field(default_factory=list)
    """Word counts of the training targets (train and eval)."""

    @property
    def turns(self) -> int:
        """Every owner turn counted."""
        return self.trained + self.held_out + self.context + sum(self.dropped.values())

    @property
    def in_samples(self) -> float:
        """Share of the owner's turns that some sample holds (as target or context)."""
        total = self.turns
        return (total - sum(self.dropped.values())) / total if total else 0.0

    def add(
        self,
        items: Sequence[Exchange],
        covered: set[int],
        too_long: set[int],
        *,
        held_out: bool,
    ) -> None:
        """Count one conversation: ``covered`` are the indices of exchanges some sample holds,
        ``too_long`` those of targets left out for their length."""
        for index, item in enumerate(items):
            self.real_words.append(item.reply.words)
            if index not in covered:
                self.dropped["too_long" if index in too_long else "outside_window"] += 1
            elif not item.target:
                self.context += 1
            else:
                self.target_words.append(item.reply.words)
                if held_out:
                    self.held_out += 1
                else:
                    self.trained += 1

    def add_dropped(self, reason: str, words: int) -> None:
        """Count an owner turn that never became an exchange."""
        self.real_words.append(words)
        self.dropped[reason] += 1

    def to_dict(self) -> dict[str, object]:
        """JSON-safe counts (without the word lists)."""
        return {
            "trained": self.trained,
            "held_out": self.held_out,
            "context": self.context,
            "dropped": dict(sorted(self.dropped.items())),
            "in_samples": round(self.in_samples, 4),
        }
