"""Conversations -> cleaned (prompt, reply) pairs -> samples that fit the token budget.

Pair-level drop reasons (each counts one pair; the owner reply's word count is kept per
reason for the report's kept-vs-dropped histogram):

* ``owner_opener``: an owner turn nobody prompted, with ``owner_starts="drop"``;
* ``filler``, ``emoji_only``, ``short_reply``: the reply teaches no style;
* ``short_prompt``: the prompt is too short to say what the reply answers;
* ``duplicate`` (identical pair seen before) and ``near_duplicate`` (identical after
  ``filters.dedup_key``), within one chat or the whole corpus (``dedup_scope``);
* ``too_long``: even the last pair alone exceeds ``max_seq_tokens``.

``prompt_without_reply`` counts user turns the owner never answered. A dropped pair is cut
out and the conversation goes on around it: the history keeps the exchanges that really
happened, one hole rather than a conversation broken in two.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from training.chat_format import ChatMessage, Role, render
from training.config import DatasetConfig
from training.conversations import Conversation, Turn
from training.filters import dedup_key, reply_drop_reason

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Sample = list[ChatMessage]
Pair = tuple[Turn, Turn]
# ChatML wraps each message in "<|im_start|>role\n" ... "<|im_end|>\n": five tokens.
MESSAGE_OVERHEAD_TOKENS = 5


class TokenCounter:
    """Token lengths of samples: exact with a tokenizer, estimated without one.

    With a tokenizer, a sample is rendered through ``training.chat_format.render`` and
    tokenized. ChatML's special tokens cut the text into independent pieces, so a sample's
    length is the sum of its messages' lengths; each message's is measured once that way and
    the windows are packed by addition. Without one, a message counts
    ``ceil(chars / chars_per_token) + 5`` tokens (``DatasetConfig.chars_per_token``).
    """

    def __init__(
        self, config: DatasetConfig, tokenizer: PreTrainedTokenizerBase | None = None
    ) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self._base: list[ChatMessage] = [{"role": "system", "content": "s"}]
        self._base_tokens = self.sample(self._base) if tokenizer is not None else 0
        self.system = self.message("system", config.system_prompt)

    def message(self, role: Role, content: str) -> int:
        """Tokens one message adds to a rendered sample."""
        if self.tokenizer is None:
            return math.ceil(len(content) / self.config.chars_per_token) + MESSAGE_OVERHEAD_TOKENS
        if role == "system":
            return self.sample([{"role": "system", "content": content}])
        piece: ChatMessage = {"role": role, "content": content}
        return self.sample([*self._base, piece]) - self._base_tokens

    def sample(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens of a whole sample (rendered with the chat template when a tokenizer is set)."""
        if self.tokenizer is None:
            return sum(self.message(m["role"], m["content"]) for m in messages)
        text = render(self.tokenizer, messages, chat_template=None, add_generation_prompt=False)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass
class PairCleaner:
    """Applies the pair rules with their counters; holds the duplicate memory."""

    config: DatasetConfig
    drops: Counter[str] = field(default_factory=Counter)
    dropped_words: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    stats: Counter[str] = field(default_factory=Counter)
    _chat_id: int = 0
    _exact: set[bytes] = field(default_factory=set)
    _near: set[bytes] = field(default_factory=set)

    def new_chat(self, chat_id: int) -> None:
        """Forget the duplicates of the previous chat when ``dedup_scope`` is ``chat``."""
        self._chat_id = chat_id
        if self.config.dedup_scope == "chat":
            self._exact.clear()
            self._near.clear()

    def _drop(self, reason: str, reply: Turn) -> None:
        self.drops[reason] += 1
        self.dropped_words[reason].append(reply.words)

    def pairs(self, conversation: Conversation) -> list[Pair]:
        """The conversation's kept (prompt, reply) pairs, in order."""
        turns = conversation.turns
        kept: list[Pair] = []
        index = 0
        if turns and turns[0].role == "assistant":
            opener = turns[0]
            if self.config.owner_starts == "drop":
                self._drop("owner_opener", opener)
                index = 1
            else:
                neutral = Turn("user", [self.config.neutral_prompt], 0, opener.last_date, 0)
                self.stats["owner_openers_prompted"] += 1
                pair = self._check(neutral, opener, prompt_rules=False)
                if pair is not None:
                    kept.append(pair)
                index = 1
        while index < len(turns):
            prompt = turns[index]
            if index + 1 >= len(turns):
                self.drops["prompt_without_reply"] += 1
                break
            pair = self._check(prompt, turns[index + 1], prompt_rules=True)
            if pair is not None:
                kept.append(pair)
            index += 2
        return kept

    def _check(self, prompt: Turn, reply: Turn, *, prompt_rules: bool) -> Pair | None:
        config = self.config
        reply_text = reply.text
        reason = reply_drop_reason(reply_text, reply.words, config)
        if reason == "short_reply" and self._keep_short(reply):
            self.stats["short_replies_kept"] += 1
            reason = None
        short_prompt = prompt_rules and prompt.words < config.min_prompt_words
        if reason is None and config.drop_short_prompt and short_prompt:
            reason = "short_prompt"
        if reason is None and config.drop_duplicates:
            prompt_text = prompt.text
            exact = _digest(prompt_text + "\x00" + reply_text)
            near = _digest(dedup_key(prompt_text) + "\x00" + dedup_key(reply_text))
            if exact in self._exact:
                reason = "duplicate"
            elif near in self._near:
                reason = "near_duplicate"
            self._exact.add(exact)
            self._near.add(near)
        if reason is not None:
            self._drop(reason, reply)
            return None
        return prompt, reply

    def _keep_short(self, reply: Turn) -> bool:
        ratio = self.config.keep_short_ratio
        if ratio <= 0:
            return False
        key = f"{self.config.sample_seed}:{self._chat_id}:{reply.anchor}".encode()
        draw = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64
        return draw < ratio


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()


def windows(pairs: Sequence[Pair], counter: TokenCounter, drops: Counter[str]) -> list[Sample]:
    """Samples ending on an owner turn, packed from the newest pair back into the history.

    Each window ends on an owner reply and takes older pairs while the sample stays within
    ``max_seq_tokens`` and ``max_pairs_per_sample``; the next window ends where this one
    began, so every reply is a target exactly once. The final reply is never cut: a pair that
    does not fit alone is dropped (``too_long``).
    """
    config = counter.config
    costs = [
        counter.message("user", p.text) + counter.message("assistant", r.text) for p, r in pairs
    ]
    samples: list[Sample] = []
    end = len(pairs)
    while end > 0:
        total = counter.system + costs[end - 1]
        if total > config.max_seq_tokens:
            drops["too_long"] += 1
            end -= 1
            continue
        start = end - 1
        while (
            start > 0
            and end - start < config.max_pairs_per_sample
            and total + costs[start - 1] <= config.max_seq_tokens
        ):
            start -= 1
            total += costs[start]
        sample: Sample = [{"role": "system", "content": config.system_prompt}]
        for prompt, reply in pairs[start:end]:
            sample.append({"role": "user", "content": prompt.text})
            sample.append({"role": "assistant", "content": reply.text})
        samples.append(sample)
        end = start
    samples.reverse()
    return samples
