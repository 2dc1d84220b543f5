"""The serving adapter's prompts: a chat's stored messages -> turns -> text or token ids.

``PromptBuilder`` holds what an engine needs for one adapter: its ``clone.json`` (template,
system prompt, the dataset rules that shaped its samples) and its tokenizer. ``turns`` shapes a
chat's messages with the turn shaper (``training.turns``), fitted to the prompt's token budget
(less the memory block's reserve); ``with_memory`` puts the system message with the memory
block first (``training.memory``, searched in the database as the training samples were);
``text`` renders them with ``training.chat_format``; ``token_ids`` tokenizes that text, for
servers that should not parse text into control tokens again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from storage.db import Database
from storage.memory import INDEX_VERSION, recall
from storage.models import MessageRecord
from training.chat_format import ChatMessage, CloneSpec, TokenCounter, render, render_prompt
from training.config import GenerationSettings
from training.memory import memory_request, memory_reserve, memory_system
from training.turns import ServingTurns, check_control_tokens, serving_turns

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


MIN_TURN_TOKENS = 32
"""The prompt must leave at least this many tokens for the conversation's turns."""


class PromptBuilder:
    """Prompts for one adapter.

    Args:
        spec: the adapter's clone.json.
        tokenizer: the adapter's tokenizer; None counts tokens by estimate and cannot render
            (tests of the reply plumbing).
        generation: the effective generation settings (their ``max_new_tokens`` is kept free
            of the prompt's budget).
    """

    def __init__(
        self,
        spec: CloneSpec,
        tokenizer: PreTrainedTokenizerBase | None,
        generation: GenerationSettings,
    ) -> None:
        if tokenizer is not None:
            check_control_tokens(tokenizer, spec.base_model)
        self.spec = spec
        self.tokenizer = tokenizer
        self.generation = generation
        self._counter = TokenCounter(spec.dataset, tokenizer)
        self.budget = spec.dataset.max_seq_tokens - generation.max_new_tokens
        """Tokens the whole prompt may take."""
        self._opening = self._generation_prompt_tokens()
        self._reserve = memory_reserve(spec.dataset)
        if self.budget - self._counter.system - self._opening - self._reserve < MIN_TURN_TOKENS:
            raise ValueError(
                f"max_new_tokens ({generation.max_new_tokens}) leaves too little of the "
                f"adapter's {spec.dataset.max_seq_tokens} tokens for the prompt; lower "
                "GENERATION_MAX_NEW_TOKENS"
            )
        if spec.dataset.memory and spec.memory_index_version != INDEX_VERSION:
            logger.warning(
                "the adapter learnt from memory index version %s, this database has %s: "
                "its memory blocks may differ from the ones it was trained with",
                spec.memory_index_version,
                INDEX_VERSION,
            )

    def turns(
        self,
        records: Sequence[MessageRecord],
        *,
        now: datetime,
        reply_to: int | None = None,
    ) -> ServingTurns | None:
        """The turns to answer (see ``training.turns.serving_turns``); None: nothing to answer."""
        return serving_turns(
            records,
            self.spec.dataset,
            now=now,
            reply_to=reply_to,
            budget=self.budget - self._counter.system - self._opening - self._reserve,
            cost=self._counter.message,
        )

    def system(self, recalled: Sequence[str]) -> str:
        """The system message with the memory block of the found messages (best first)."""
        return memory_system(self.spec.dataset, self._counter, recalled)

    async def with_memory(self, shaped: ServingTurns, db: Database) -> list[ChatMessage]:
        """The prompt's messages: the system message, with the memory block the adapter's
        training samples would have had for these turns, then the turns."""
        request = memory_request(shaped.prompts, shaped.start, self.spec.dataset)
        recalled: list[str] = []
        if request is not None:
            found = await recall(db, request.stems, before=request.before, limit=request.limit)
            recalled = [item.text for item in found]
        return [{"role": "system", "content": self.system(recalled)}, *shaped.messages]

    def text(self, turns: Sequence[ChatMessage]) -> str:
        """The prompt text: system message (``turns``' own first one, else the adapter's
        system prompt), turns, and the opening of the clone's turn."""
        return render_prompt(self._tokenizer(), self.spec, turns)

    def token_ids(self, turns: Sequence[ChatMessage]) -> list[int]:
        """The prompt as token ids (the template's markers are the only control tokens)."""
        tokenizer = self._tokenizer()
        return list(tokenizer(self.text(turns), add_special_tokens=False)["input_ids"])

    def _tokenizer(self) -> PreTrainedTokenizerBase:
        if self.tokenizer is None:
            raise RuntimeError("this PromptBuilder has no tokenizer to render with")
        return self.tokenizer

    def _generation_prompt_tokens(self) -> int:
        """Tokens of the assistant turn's opening that ends every prompt."""
        if self.tokenizer is None:
            return 3
        system: list[ChatMessage] = [{"role": "system", "content": "s"}]
        template = self.spec.chat_template
        opened = render(self.tokenizer, system, chat_template=template, add_generation_prompt=True)
        closed = render(
            self.tokenizer, system, chat_template=template, add_generation_prompt=False
        )
        count = self.tokenizer(opened, add_special_tokens=False)["input_ids"]
        return len(count) - len(self.tokenizer(closed, add_special_tokens=False)["input_ids"])
