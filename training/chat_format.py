"""The only code that turns a conversation into model text, for training and for serving.

Training and serving both call ``render`` with the template and system prompt saved in the
adapter's ``clone.json``, so the prompt the bot sends is byte for byte the prefix the model
was trained on.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from storage.private_files import write_private_text
from training.config import DatasetConfig, GenerationSettings

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Role = Literal["system", "user", "assistant"]
CLONE_SPEC_FILE = "clone.json"
CLONE_FORMAT_VERSION = 3
"""Version 2 records the dataset rules (the turn shaping) serving must repeat; version 3 the
memory block's settings with them, and the memory index's version."""
READABLE_FORMAT_VERSIONS = (1, 2, 3)
# Closes every turn in Qwen's ChatML template; the loss covers it so the clone learns to stop.
END_OF_TURN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
"""Pads batches; never the end of turn, or the model would not learn to stop."""
STOP_TOKENS = (END_OF_TURN, PAD_TOKEN)
"""Generation ends at either (a base model's habit of ending with <|endoftext|> included)."""


class ChatMessage(TypedDict):
    """One message of a conversation, as chat templates expect it."""

    role: Role
    content: str
    weight: NotRequired[int]
    """0 on an owner turn that is context only (not trained on); absent means trained."""


Turn = ChatMessage


def render(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[ChatMessage],
    *,
    chat_template: str | None,
    add_generation_prompt: bool,
) -> str:
    """Render messages (system first) to text with the chat template (None: the tokenizer's)."""
    text = tokenizer.apply_chat_template(
        [{"role": m["role"], "content": m["content"]} for m in messages],
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
        chat_template=chat_template,
    )
    if not isinstance(text, str):
        raise TypeError(f"apply_chat_template returned {type(text).__name__}, expected str")
    return text


def build_messages(system_prompt: str, turns: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Put the system prompt first, then the user/assistant turns in order.

    A system message first in ``turns`` (the system prompt with its memory block, from
    ``training.memory.memory_system``) takes the system prompt's place.
    """
    if turns and turns[0]["role"] == "system":
        system_prompt, turns = turns[0]["content"], turns[1:]
    messages: list[ChatMessage] = [{"role": "system", "content": system_prompt}]
    for index, turn in enumerate(turns):
        if turn["role"] not in ("user", "assistant"):
            raise ValueError(f"turn {index} has role {turn['role']!r}; expected user or assistant")
        messages.append(dict(turn))  # type: ignore[arg-type]
    return messages


@dataclass(frozen=True, kw_only=True)
class CloneSpec:
    """What serving needs to talk like the trained clone; saved as ``clone.json``."""

    base_model: str
    """The model the adapter was trained on."""
    dataset: DatasetConfig
    """The rules the samples were built with: system prompt and turn shaping, for serving."""
    chat_template: str
    """The full chat template text used in training."""
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    """Sampling settings for serving."""
    training: dict[str, Any] = field(default_factory=dict)
    """Every training and dataset knob as the run resolved it (``training.settings.resolved``)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """eval_loss, eval_mean_token_accuracy, train_loss, ..."""
    dataset_size: int = 0
    """Samples (train + eval) the adapter saw."""
    dataset_fingerprint: str = ""
    """sha256 of the dataset, from ``DatasetBuild.fingerprint``."""
    memory_index_version: int = 0
    """``storage.memory.INDEX_VERSION`` of the index the samples' memory blocks came from
    (0: none; ``dataset.memory`` says whether they have blocks)."""
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    """When training finished, ISO 8601 UTC."""
    precision: str = ""
    """The base model's weights as trained, judged and to be served: ``nf4`` (bitsandbytes
    4-bit NormalFloat with double quantization: the in-process engine on CUDA, and vLLM with
    ``--quantization bitsandbytes``), ``bf16`` or ``fp32``; empty in adapters older than it."""
    format_version: int = CLONE_FORMAT_VERSION
    """Version of this file's layout."""

    @property
    def system_prompt(self) -> str:
        """The system message every sample starts with."""
        return self.dataset.system_prompt

    @property
    def prompt_budget(self) -> int:
        """Tokens a serving prompt may take: the sample length less the longest reply."""
        return self.dataset.max_seq_tokens - self.generation.max_new_tokens

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "format_version": self.format_version,
            "base_model": self.base_model,
            "system_prompt": self.system_prompt,
            "chat_template": self.chat_template,
            "dataset": self.dataset.to_dict(),
            "generation": self.generation.to_dict(),
            "training": dict(self.training),
            "metrics": dict(self.metrics),
            "dataset_size": self.dataset_size,
            "dataset_fingerprint": self.dataset_fingerprint,
            "memory_index_version": self.memory_index_version,
            "created_at": self.created_at,
            "precision": self.precision,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CloneSpec:
        """Inverse of ``to_dict``; older files get the shaping of their time."""
        if "dataset" in data:
            rules = dict(data["dataset"])
            # Before version 3 samples had no memory block and the rules alone chose targets.
            rules.setdefault("memory", False)
            rules.setdefault("match_owner_lengths", False)
            dataset = DatasetConfig.from_dict(rules)
        else:  # version 1: openers were dropped, the other rules had today's defaults
            dataset = DatasetConfig(
                system_prompt=str(data["system_prompt"]), owner_starts="drop", memory=False
            )
        return cls(
            base_model=str(data["base_model"]),
            dataset=dataset,
            chat_template=str(data["chat_template"]),
            generation=GenerationSettings.from_dict(data.get("generation", {})),
            training=dict(data.get("training", {})),
            metrics={str(k): float(v) for k, v in data.get("metrics", {}).items()},
            dataset_size=int(data.get("dataset_size", 0)),
            dataset_fingerprint=str(data.get("dataset_fingerprint", "")),
            memory_index_version=int(data.get("memory_index_version", 0)),
            created_at=str(data["created_at"]),
            precision=str(data.get("precision", "")),
            format_version=CLONE_FORMAT_VERSION,
        )


class CloneSpecError(ValueError):
    """clone.json is missing, unreadable or of an unknown format."""


def save_clone_spec(adapter_dir: Path, spec: CloneSpec) -> Path:
    """Write ``clone.json`` into the adapter directory (atomically) and return its path."""
    path = Path(adapter_dir) / CLONE_SPEC_FILE
    tmp = path.with_suffix(".json.tmp")
    write_private_text(tmp, json.dumps(spec.to_dict(), ensure_ascii=False, indent=2))
    os.replace(tmp, path)
    return path


def load_clone_spec(adapter_dir: Path) -> CloneSpec:
    """Read ``clone.json`` from an adapter directory; ``CloneSpecError`` names the file."""
    path = Path(adapter_dir) / CLONE_SPEC_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CloneSpecError(
            f"{path} not found: {adapter_dir} is not an adapter made by training.train"
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CloneSpecError(f"{path} is unreadable: {exc}") from exc
    if not isinstance(data, dict):
        raise CloneSpecError(f"{path} must hold a JSON object")
    if data.get("format_version") not in READABLE_FORMAT_VERSIONS:
        raise CloneSpecError(
            f"{path} has format_version {data.get('format_version')!r}; "
            f"this code reads versions {list(READABLE_FORMAT_VERSIONS)}"
        )
    try:
        return CloneSpec.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise CloneSpecError(f"{path} is incomplete or malformed: {exc!r}") from exc


def render_prompt(
    tokenizer: PreTrainedTokenizerBase, spec: CloneSpec, history: Sequence[ChatMessage]
) -> str:
    """The text serving sends: the spec's system prompt and template, the history, and the
    opening of the clone's turn."""
    messages = build_messages(spec.system_prompt, history)
    return render(
        tokenizer, messages, chat_template=spec.chat_template, add_generation_prompt=True
    )


def assistant_spans(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[ChatMessage],
    *,
    chat_template: str | None,
) -> tuple[str, list[tuple[int, int]]]:
    """Render the conversation and return the character span of each trained assistant turn.

    A span starts right after the generation prompt (what serving sends) and ends after the
    turn's closing ``<|im_end|>``; the newline after it is the template's, not the owner's.
    """
    text = render(tokenizer, messages, chat_template=chat_template, add_generation_prompt=False)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("weight", 1) == 0:
            continue
        prefix = render(
            tokenizer, messages[:index], chat_template=chat_template, add_generation_prompt=True
        )
        if not text.startswith(prefix):
            raise ValueError(
                "chat template is not prefix-stable: the prompt for a turn is not a prefix of the "
                "whole conversation, so training and serving would see different text"
            )
        start = len(prefix)
        end = text.find(END_OF_TURN, start + len(message["content"]))
        if end < 0:
            raise ValueError(f"chat template does not close assistant turns with {END_OF_TURN}")
        spans.append((start, end + len(END_OF_TURN)))
    return text, spans


def _encode(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[ChatMessage],
    chat_template: str | None,
) -> dict[str, list[int]]:
    text, spans = assistant_spans(tokenizer, messages, chat_template=chat_template)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    masks = []
    for start, _end in encoded["offset_mapping"]:
        # A token belongs to the turn it starts in; a token starting before a span belongs
        # to the prompt, which is what serving feeds the model.
        masks.append(int(any(s <= start < e for s, e in spans)))
    return {"input_ids": list(encoded["input_ids"]), "assistant_masks": masks}


def tokenize_for_training(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[ChatMessage],
    *,
    chat_template: str | None,
    max_length: int,
) -> dict[str, list[int]]:
    """Token ids and a loss mask (1 on the owner's trained turns and their ``<|im_end|>``).

    When the sample is longer than ``max_length`` tokens, whole oldest (user, assistant) pairs
    after the system message are dropped until it fits; the final owner reply is never cut.
    A sample that is still too long with one pair left is returned as is (the caller drops it).
    """
    if not messages or messages[0]["role"] != "system":
        raise ValueError("a training sample must start with the system message")
    if messages[-1]["role"] != "assistant" or messages[-1].get("weight", 1) == 0:
        raise ValueError("a training sample must end on a trained assistant turn")
    current = list(messages)
    while True:
        encoded = _encode(tokenizer, current, chat_template)
        assistant_turns = sum(1 for m in current if m["role"] == "assistant")
        if len(encoded["input_ids"]) <= max_length or assistant_turns <= 1:
            return encoded
        first_reply = next(i for i, m in enumerate(current) if m["role"] == "assistant")
        current = [current[0], *current[first_reply + 1 :]]


# ChatML wraps each message in "<|im_start|>role\n" ... "<|im_end|>\n": five tokens.
MESSAGE_OVERHEAD_TOKENS = 5
_COUNT_CACHE_SIZE = 4096


class TokenCounter:
    """Token lengths of samples: exact with a tokenizer, estimated without one.

    With a tokenizer, a sample is rendered through ``render`` and tokenized. ChatML's special
    tokens cut the text into independent pieces, so a sample's length is the sum of its
    messages' lengths; each message's is measured once (and remembered: serving counts the
    same history for every reply of a chat). When the template renders a user or assistant
    message as fixed text around its content (ChatML does: ``<|im_start|>user\n…<|im_end|>\n``,
    checked on two probes), that text is tokenized directly, without rendering the template
    each time (20 times faster). Without a tokenizer, a message counts
    ``ceil(chars / chars_per_token) + 5`` tokens (``DatasetConfig.chars_per_token``).
    """

    def __init__(
        self, config: DatasetConfig, tokenizer: PreTrainedTokenizerBase | None = None
    ) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self._base: list[ChatMessage] = [{"role": "system", "content": "s"}]
        self._cache: dict[tuple[Role, str], int] = {}
        self._frames: dict[Role, tuple[str, str]] = {}
        if tokenizer is not None:
            self._base_text = self._render(self._base)
            self._base_tokens = self._tokens(self._base_text)
            for role in ("user", "assistant"):
                frame = self._frame(role)
                if frame is not None:
                    self._frames[role] = frame
        self.system = self.message("system", config.system_prompt)

    def message(self, role: Role, content: str) -> int:
        """Tokens one message adds to a rendered sample."""
        if self.tokenizer is None:
            return math.ceil(len(content) / self.config.chars_per_token) + MESSAGE_OVERHEAD_TOKENS
        key = (role, content)
        tokens = self._cache.get(key)
        if tokens is None:
            frame = self._frames.get(role)
            if frame is not None:
                tokens = self._tokens(frame[0] + content + frame[1])
            elif role == "system":
                tokens = self.sample([{"role": "system", "content": content}])
            else:
                tokens = self._rendered_piece(role, content)
            if len(self._cache) >= _COUNT_CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = tokens
        return tokens

    def sample(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens of a whole sample (rendered with the chat template when a tokenizer is set)."""
        if self.tokenizer is None:
            return sum(self.message(m["role"], m["content"]) for m in messages)
        return self._tokens(self._render(messages))

    def _render(self, messages: Sequence[ChatMessage]) -> str:
        assert self.tokenizer is not None
        return render(self.tokenizer, messages, chat_template=None, add_generation_prompt=False)

    def _tokens(self, text: str) -> int:
        assert self.tokenizer is not None
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _rendered_piece(self, role: Role, content: str) -> int:
        piece: ChatMessage = {"role": role, "content": content}
        return self.sample([*self._base, piece]) - self._base_tokens

    def _frame(self, role: Role) -> tuple[str, str] | None:
        """The text the template puts around a message of ``role``, if it is fixed."""
        marker = "\x00content\x00"
        text = self._render([*self._base, {"role": role, "content": marker}])
        piece = text.removeprefix(self._base_text)
        if piece == text or piece.count(marker) != 1:
            return None
        frame = tuple(piece.split(marker))
        probe = "Проверка: two words\n🙂"
        if self._tokens(frame[0] + probe + frame[1]) != self._rendered_piece(role, probe):
            return None
        return frame[0], frame[1]
