"""Conversations -> exchanges with training targets -> samples that fit the token budget.

Every owner reply of a conversation stays in the samples, so that a sample holds the turns
that really happened and serving (which sees all of them) gets the same history. The reply
rules decide only which replies are *targets* (trained on); the others stay as context, with
``weight`` 0 in the sample. Each reason below counts one reply that is not a target (the
reply's word count is kept per reason for the report's length histogram):

* ``owner_opener``: an owner turn nobody prompted, with ``owner_starts="drop"`` (cut out;
  with ``context``, the default, it is context and counted as ``opener_context``);
* ``filler``, ``emoji_only``, ``short_reply``: the reply teaches no style;
* ``short_prompt``: the prompt is too short to say what the reply answers;
* ``duplicate`` (identical exchange seen before) and ``near_duplicate`` (identical after
  ``filters.dedup_key``), within one chat or the whole corpus (``dedup_scope``);
* ``too_long``: even the reply's exchange alone exceeds ``max_seq_tokens``.

``prompt_without_reply`` counts user turns the owner never answered.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from training.chat_format import ChatMessage, TokenCounter
from training.config import DatasetConfig
from training.coverage import Marked, draw
from training.filters import dedup_key, reply_drop_reason
from training.memory import memory_reserve
from training.turns import Conversation, Exchange, exchange_messages, exchanges, fit_window

Sample = list[ChatMessage]
OPENER_CONTEXT = "opener_context"
"""The reason of an owner turn nobody prompted, kept as context (``owner_starts``)."""


@dataclass
class ReplyRules:
    """Says why each reply is not a target, with counters; holds the duplicate memory.

    ``mark`` only records reasons: which flagged replies are trained on anyway is decided
    over the whole corpus (``training.coverage.promote``), then ``settle`` counts the rest.
    """

    config: DatasetConfig
    drops: Counter[str] = field(default_factory=Counter)
    dropped_words: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    stats: Counter[str] = field(default_factory=Counter)
    dropped_openers: list[int] = field(default_factory=list)
    """Word counts of the openers ``owner_starts="drop"`` cut out."""
    _chat_id: int = 0
    _exact: set[bytes] = field(default_factory=set)
    _near: set[bytes] = field(default_factory=set)

    def new_chat(self, chat_id: int) -> None:
        """Forget the duplicates of the previous chat when ``dedup_scope`` is ``chat``."""
        self._chat_id = chat_id
        if self.config.dedup_scope == "chat":
            self._exact.clear()
            self._near.clear()

    def mark(self, conversation: Conversation) -> Marked:
        """The conversation's exchanges in order, each with the reason it is not a target."""
        made, dropped_opener = exchanges(conversation, self.config)
        turns = conversation.turns
        if dropped_opener:
            self.drops["owner_opener"] += 1
            self.dropped_words["owner_opener"].append(turns[0].words)
            self.dropped_openers.append(turns[0].words)
        if turns[-1].role == "user":
            self.drops["prompt_without_reply"] += 1
        prompted_opener = (
            turns[0].role == "assistant" and self.config.owner_starts == "neutral_prompt"
        )
        reasons: list[str | None] = []
        repeats: set[int] = set()
        for index, item in enumerate(made):
            if item.prompt is None:
                self.stats["opener_context"] += 1
                reasons.append(OPENER_CONTEXT)
                continue
            if index == 0 and prompted_opener:
                self.stats["owner_openers_prompted"] += 1
            reason, repeat = self._reason(item, prompt_rules=not (index == 0 and prompted_opener))
            reasons.append(reason)
            if repeat:
                repeats.add(index)
        return Marked(conversation.chat_id, conversation.start, made, reasons, repeats)

    def settle(self, marked: Marked) -> None:
        """Set each exchange's ``target`` from its reason, counting the replies left as
        context under their reason (an opener kept as context is counted in ``stats``)."""
        for item, reason in zip(marked.items, marked.reasons, strict=True):
            item.target = reason is None
            if reason is not None and reason != OPENER_CONTEXT:
                self.drops[reason] += 1
                self.dropped_words[reason].append(item.reply.words)

    def _reason(self, item: Exchange, *, prompt_rules: bool) -> tuple[str | None, bool]:
        """Why the reply is not a target (None: it is), and whether it repeats an earlier one."""
        config = self.config
        assert item.prompt is not None
        prompt, reply = item.prompt, item.reply
        reply_text = reply.text
        reason = reply_drop_reason(reply_text, reply.words, config)
        if reason == "short_reply" and self._keep_short(reply.anchor):
            self.stats["short_replies_kept"] += 1
            reason = None
        short_prompt = prompt_rules and prompt.words < config.min_prompt_words
        if reason is None and config.drop_short_prompt and short_prompt:
            return "short_prompt", False
        if not config.drop_duplicates:
            return reason, False
        # A flagged reply is remembered too: one chosen later to keep the owner's length mix
        # (training.coverage) must not repeat an earlier exchange either.
        prompt_text = prompt.text
        exact = _digest(prompt_text + "\x00" + reply_text)
        near = _digest(dedup_key(prompt_text) + "\x00" + dedup_key(reply_text))
        repeat = "duplicate" if exact in self._exact else None
        if repeat is None and near in self._near:
            repeat = "near_duplicate"
        self._exact.add(exact)
        self._near.add(near)
        if reason is None and repeat is not None:
            return repeat, True
        return reason, repeat is not None

    def _keep_short(self, anchor: int) -> bool:
        ratio = self.config.keep_short_ratio
        if ratio <= 0 or self.config.match_owner_lengths:
            return False
        return draw(self.config.sample_seed, self._chat_id, anchor) < ratio


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()


def exchange_cost(item: Exchange, counter: TokenCounter) -> int:
    """Tokens the exchange adds to a rendered sample."""
    prompt = counter.message("user", item.prompt.text) if item.prompt is not None else 0
    return prompt + counter.message("assistant", item.reply.text)


@dataclass(frozen=True)
class Window:
    """One sample and the exchanges it holds: ``items[start:end]``, ending on a target."""

    sample: Sample
    start: int
    end: int


def windows(
    items: list[Exchange], counter: TokenCounter, drops: Counter[str]
) -> tuple[list[Window], set[int]]:
    """Samples ending on a target reply, packed from the newest exchange back into the history,
    and the indices of the targets too long to train on.

    Each window ends on a target and takes older exchanges (targets or context) while the
    sample stays within ``max_seq_tokens`` (less the memory block's reserve) and
    ``max_pairs_per_sample``; the next window ends where this one began, so every target is
    trained exactly once. A target whose exchange does not fit alone is dropped
    (``too_long``) and stays out of every window. The system message is the bare system
    prompt; ``training.dataset`` adds the memory block once the split is known.
    """
    config = counter.config
    costs = [exchange_cost(item, counter) for item in items]
    budget = config.max_seq_tokens - counter.system - memory_reserve(config)
    made: list[Window] = []
    too_long: set[int] = set()
    end = len(items)
    while end > 0:
        last = end - 1
        if not items[last].target:
            end = last
            continue
        if costs[last] > budget:
            items[last].target = False
            drops["too_long"] += 1
            too_long.add(last)
            end = last
            continue
        start = fit_window(costs, end, budget, config.max_pairs_per_sample)
        system: ChatMessage = {"role": "system", "content": config.system_prompt}
        sample = [system, *exchange_messages(items[start:end], weights=True)]
        made.append(Window(sample, start, end))
        end = start
    made.reverse()
    return made, too_long


def targets(sample: Sample) -> list[str]:
    """The texts of a sample's trained owner replies (context turns have weight 0)."""
    return [m["content"] for m in sample if m["role"] == "assistant" and m.get("weight", 1) != 0]
