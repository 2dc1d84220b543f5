"""``DatasetConfig``: how the owner's messages become training conversations.

Every cleaning rule has a switch here and a counter in ``DatasetBuild.drops``. Single fields
are checked on construction; combinations by ``validate()`` (one ``ValueError`` listing every
problem). Re-exported by ``training.config``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from training.config_checks import raise_if, unknown_keys

DEFAULT_MAX_LENGTH = 1024
"""Tokens per training sample (TrainConfig.max_length); dataset windows are fitted to it."""

DEFAULT_SYSTEM_PROMPT = (
    "You are the owner of this Telegram account. Reply to the last message exactly as the "
    "owner would: same language, tone, length and habits."
)
DEFAULT_FILLER_REPLIES = frozenset(
    {"ок", "ok", "okay", "спасибо", "спс", "+", "👍", "хорошо", "да", "нет", "ага"}
)
OwnerStarts = Literal["context", "drop", "neutral_prompt"]
OWNER_STARTS_CHOICES: tuple[OwnerStarts, ...] = ("context", "drop", "neutral_prompt")
DedupScope = Literal["chat", "corpus"]
DEDUP_SCOPES: tuple[DedupScope, ...] = ("chat", "corpus")
_TIMEDELTAS = ("session_gap", "merge_window")


@dataclass(frozen=True, kw_only=True)
class DatasetConfig:
    """How the owner's messages become training conversations."""

    system_prompt: str = field(
        default=DEFAULT_SYSTEM_PROMPT, metadata={"setting": "system_prompt"}
    )
    """System message put first in every sample (and saved in clone.json for serving)."""
    session_gap: timedelta = field(
        default=timedelta(minutes=30), metadata={"setting": "session_gap_minutes"}
    )
    """A silence longer than this (days included) starts a new conversation."""
    merge_window: timedelta = timedelta(minutes=2)
    """The owner's consecutive messages at most this far apart form one reply. A later owner
    message with no one answering in between starts a new conversation segment (see
    ``training.conversations``)."""
    min_reply_words: int = 5
    """Owner replies with fewer words count as short (see ``drop_short``)."""
    min_prompt_words: int = 3
    """Prompts (the user turn before a reply) with fewer words count as short."""
    filler_replies: frozenset[str] = DEFAULT_FILLER_REPLIES
    """Lower-case replies that carry no style ("ok", "+"); matched after trimming punctuation."""
    drop_filler: bool = True
    """Do not train on owner replies found in ``filler_replies`` (they stay as context)."""
    drop_short: bool = True
    """Do not train on owner replies shorter than ``min_reply_words`` words (they stay as
    context; but see ``keep_short_ratio``)."""
    match_owner_lengths: bool = True
    """Train on a deterministic share of the short, filler and emoji-only replies, chosen so
    that the training targets' lengths follow the owner's real ones. The others stay as
    context (see ``training.coverage``); off, the rules above decide alone."""
    keep_short_ratio: float = 0.0
    """With ``match_owner_lengths`` off: share of the short replies trained on anyway, chosen
    deterministically, in [0, 1]."""
    drop_short_prompt: bool = False
    """Do not train on replies whose prompt has fewer than ``min_prompt_words`` words (off by
    default: the sample's history says what a short prompt refers to)."""
    drop_emoji_only: bool = True
    """Do not train on owner replies made only of emoji (and spaces/punctuation)."""
    drop_technical: bool = True
    """Drop turns that are only timestamps or export placeholders ("(File not included...)")."""
    drop_forwarded: bool = True
    """Drop forwarded messages (somebody else's words)."""
    drop_duplicates: bool = True
    """Do not train on repeated (prompt, reply) exchanges: exact, or equal after
    normalisation."""
    dedup_scope: DedupScope = "chat"
    """Where a repeat counts: within one chat (default) or across the whole corpus."""
    scrub_private_data: bool = True
    """Replace phone numbers, e-mails, card numbers and codes with placeholders."""
    owner_starts: OwnerStarts = "context"
    """What to do with an owner turn nobody prompted: keep it as ``context`` of the
    conversation it opens (default: the conversation stays whole, and the clone never learns to
    open topics out of nothing, the "talks about something else" failure), ``drop`` it, or put
    ``neutral_prompt`` before it and train on it."""
    neutral_prompt: str = "…"
    """The user turn put before an unprompted owner turn when ``owner_starts`` asks for it."""
    max_seq_tokens: int = field(
        default=DEFAULT_MAX_LENGTH, metadata={"setting": "train_max_length"}
    )
    """Longest sample in tokens (system prompt included); older pairs are left out to fit."""
    chars_per_token: float = 2.5
    """Token estimate without a tokenizer: characters per token (Qwen2.5 averages about 2.5-3
    on Russian chat text and about 4 on English; the low value keeps the estimate safe)."""
    max_pairs_per_sample: int = 16
    """At most this many (user, owner) pairs in one sample."""
    group_context_messages: int = 4
    """In groups, how many messages before each owner message (same session) are context."""
    eval_fraction: float = 0.1
    """Share of conversations held out for evaluation (the most recent ones), in [0, 1)."""
    sample_seed: int = 0
    """Changes which short replies are trained on (``match_owner_lengths``,
    ``keep_short_ratio``), deterministically."""
    memory: bool = field(default=True, metadata={"setting": "memory"})
    """Put the owner's own earlier messages most relevant to the conversation into the
    system message ("Things you have said before: ..."), in training and at serving."""
    memory_k: int = field(default=5, metadata={"setting": "memory_k"})
    """At most this many of the owner's messages in the memory block."""
    memory_budget_tokens: int = field(default=200, metadata={"setting": "memory_budget_tokens"})
    """Tokens the memory block may take, and at most a quarter of ``max_seq_tokens``; every
    sample and prompt keeps them free for it."""

    def __post_init__(self) -> None:
        raise_if(self._field_problems(), "DatasetConfig")

    def _field_problems(self) -> list[str]:
        problems = []
        if not self.system_prompt.strip():
            problems.append("system_prompt must not be empty")
        for name in _TIMEDELTAS:
            if getattr(self, name) <= timedelta(0):
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("min_reply_words", "min_prompt_words", "group_context_messages"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.keep_short_ratio <= 1:
            problems.append(f"keep_short_ratio must be in [0, 1], got {self.keep_short_ratio}")
        if self.memory_k < 1:
            problems.append(f"memory_k must be >= 1, got {self.memory_k}")
        if self.memory_budget_tokens < 16:
            problems.append(f"memory_budget_tokens must be >= 16, got {self.memory_budget_tokens}")
        if not 0 <= self.eval_fraction < 1:
            problems.append(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if self.max_pairs_per_sample < 1:
            problems.append(f"max_pairs_per_sample must be >= 1, got {self.max_pairs_per_sample}")
        if self.max_seq_tokens < 16:
            problems.append(f"max_seq_tokens must be >= 16, got {self.max_seq_tokens}")
        if self.chars_per_token <= 0:
            problems.append(f"chars_per_token must be > 0, got {self.chars_per_token}")
        if self.owner_starts not in OWNER_STARTS_CHOICES:
            problems.append(
                f"owner_starts must be one of {OWNER_STARTS_CHOICES}, got {self.owner_starts!r}"
            )
        if self.dedup_scope not in DEDUP_SCOPES:
            problems.append(f"dedup_scope must be one of {DEDUP_SCOPES}, got {self.dedup_scope!r}")
        not_lower = sorted(f for f in self.filler_replies if f != f.strip().lower())
        if not_lower:
            problems.append(f"filler_replies must be lower-case and trimmed: {not_lower}")
        return problems

    def problems(self) -> list[str]:
        """Every problem of this object, combinations included (empty when valid)."""
        problems = self._field_problems()
        if self.drop_filler and not self.filler_replies:
            problems.append("drop_filler is on but filler_replies is empty")
        if self.drop_short and self.min_reply_words == 0:
            problems.append("drop_short is on but min_reply_words is 0: nothing would be short")
        if self.drop_short_prompt and self.min_prompt_words == 0:
            problems.append(
                "drop_short_prompt is on but min_prompt_words is 0: nothing would be short"
            )
        if self.match_owner_lengths and self.keep_short_ratio > 0:
            problems.append(
                "keep_short_ratio applies only with match_owner_lengths off: set one of them"
            )
        if self.owner_starts == "neutral_prompt" and not self.neutral_prompt.strip():
            problems.append("owner_starts is neutral_prompt but neutral_prompt is empty")
        if self.merge_window > self.session_gap:
            problems.append(
                f"merge_window ({self.merge_window}) exceeds session_gap ({self.session_gap}); "
                "lower merge_window"
            )
        return problems

    def validate(self) -> None:
        """Raise one ``ValueError`` listing every problem."""
        raise_if(self.problems(), "DatasetConfig")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (time spans in seconds, the filler set as a sorted list)."""
        data = dataclasses.asdict(self)
        for name in _TIMEDELTAS:
            data[name] = getattr(self, name).total_seconds()
        data["filler_replies"] = sorted(self.filler_replies)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetConfig:
        """Inverse of ``to_dict``; unknown keys are an error."""
        unknown_keys(cls, data)
        values = dict(data)
        for name in _TIMEDELTAS:
            if name in values:
                values[name] = timedelta(seconds=float(values[name]))
        if "filler_replies" in values:
            values["filler_replies"] = frozenset(values["filler_replies"])
        return cls(**values)
