"""One ``model.generate`` call for a batch of prompts, streaming each row's text on its own.

``generate_batch`` left-pads the prompts with ``<|endoftext|>``, generates them together and
hands every request its new text through ``StreamTarget.emit`` as soon as it is decoded. A row
stops receiving once it produced a stop token (``<|im_end|>`` or ``<|endoftext|>``) or once its
consumer went away; when every row is finished, generation ends early.

Runs in the engine's worker thread: nothing here touches the event loop.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from training.chat_format import PAD_TOKEN, STOP_TOKENS
from training.config import GenerationSettings

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

_INCOMPLETE = "\ufffd"  # what decoding shows for a character whose UTF-8 bytes are not all in


@dataclass(frozen=True)
class StreamTarget:
    """Where one row of a batch goes."""

    emit: Callable[[str], None]
    """Receives each new piece of text, in order (called from the worker thread)."""
    abandoned: Callable[[], bool]
    """True once nobody waits for this row any more (its consumer stopped early)."""


class IncrementalDecoder:
    """Turns one sequence's token ids into text pieces without splitting a character.

    Byte-level BPE spreads a Cyrillic letter or an emoji over several tokens; until its last
    byte arrives the text ends in U+FFFD, so nothing is emitted until the character is whole.
    Only a short window of tokens is decoded each time (as TGI and vLLM do), so a long reply
    costs linear, not quadratic, decoding work.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix = 0  # window start: a token or more before the unsent text, for context
        self._read = 0  # tokens up to here are already emitted as text

    def push(self, token_id: int) -> str:
        """Add a token; the text that became final with it (maybe empty)."""
        self._ids.append(token_id)
        return self._advance(final=False)

    def flush(self) -> str:
        """Whatever is left at the end, an unfinishable character included."""
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> str:
        sent = self._decode(self._ids[self._prefix : self._read])
        text = self._decode(self._ids[self._prefix :])
        if len(text) <= len(sent) or (text.endswith(_INCOMPLETE) and not final):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return text[len(sent) :]

    def _decode(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids, skip_special_tokens=True))


class BatchStreamer:
    """A ``transformers`` streamer for a whole batch: ``put`` gets one new token per row.

    Subclasses ``BaseStreamer`` at run time (see ``streamer_class``) so that importing this
    module does not import transformers.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        targets: Sequence[StreamTarget],
        stop_ids: Sequence[int],
    ) -> None:
        self._targets = list(targets)
        self._decoders = [IncrementalDecoder(tokenizer) for _ in targets]
        self._finished = [False] * len(targets)
        self._stop_ids = frozenset(stop_ids)
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        """First the prompts (skipped), then the batch's next token for every row."""
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for row, token_id in enumerate(value.reshape(-1).tolist()):
            if self._finished[row]:
                continue
            target = self._targets[row]
            if token_id in self._stop_ids or target.abandoned():
                self._finish(row)
                continue
            piece = self._decoders[row].push(int(token_id))
            if piece:
                target.emit(piece)

    def end(self) -> None:
        """Generation is over: every row still open (max_new_tokens reached) ends here."""
        for row in range(len(self._targets)):
            if not self._finished[row]:
                self._finish(row)

    def _finish(self, row: int) -> None:
        self._finished[row] = True
        if self._targets[row].abandoned():
            return
        rest = self._decoders[row].flush()
        if rest:
            self._targets[row].emit(rest)


def token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    """The id of a special token the tokenizer must know."""
    found = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(found, int) or found == tokenizer.unk_token_id:
        raise ValueError(f"the tokenizer has no {token} token: not a Qwen2.5 tokenizer")
    return found


@functools.cache
def streamer_class() -> type[BatchStreamer]:
    """``BatchStreamer`` as a real ``transformers`` ``BaseStreamer`` (imported on demand)."""
    from transformers.generation.streamers import BaseStreamer

    class _BatchStreamer(BatchStreamer, BaseStreamer):
        pass

    return _BatchStreamer


def _abandoned_criteria(targets: Sequence[StreamTarget]) -> Any:
    """A stopping criterion that ends the rows whose consumers left."""
    import torch
    from transformers import StoppingCriteria

    class _Abandoned(StoppingCriteria):
        def __call__(
            self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
        ) -> torch.BoolTensor:
            flags = [target.abandoned() for target in targets]
            return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]

    return _Abandoned()


def generate_batch(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    targets: Sequence[StreamTarget],
    settings: GenerationSettings,
) -> None:
    """Generate a reply for every prompt at once, streaming row ``i`` to ``targets[i]``.

    All rows share ``settings`` (a batch is one ``generate`` call). Left padding plus the
    attention mask keep each row's reply what it would be alone, up to float rounding; the
    repetition penalty also sees a padded row's pad tokens, which only makes that row a little
    less likely to end with ``<|endoftext|>`` (``<|im_end|>`` is the clone's real stop).
    """
    import torch
    from transformers import StoppingCriteriaList

    if len(prompts) != len(targets) or not prompts:
        raise ValueError("generate_batch needs one target per prompt, and at least one prompt")
    inputs = tokenizer(
        list(prompts),
        return_tensors="pt",
        padding=True,
        padding_side="left",
        add_special_tokens=False,
    ).to(model.device)
    stop_ids = [token_id(tokenizer, token) for token in STOP_TOKENS]
    streamer = streamer_class()(tokenizer, targets, stop_ids)
    with torch.inference_mode():
        model.generate(
            **inputs,
            **settings.to_generate_kwargs(),
            eos_token_id=stop_ids,
            pad_token_id=token_id(tokenizer, PAD_TOKEN),
            streamer=streamer,
            stopping_criteria=StoppingCriteriaList([_abandoned_criteria(targets)]),
        )
