"""Chat rendering: serving prompt == training prefix, loss mask token by token, clone.json."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from training.chat_format import (
    END_OF_TURN,
    ChatMessage,
    CloneSpec,
    CloneSpecError,
    assistant_spans,
    build_messages,
    load_clone_spec,
    render,
    render_prompt,
    save_clone_spec,
    tokenize_for_training,
)
from training.config import DatasetConfig, GenerationSettings

SYSTEM = "You are Alex. Reply as Alex would."
TURNS: list[ChatMessage] = [
    {"role": "user", "content": "привет! как дела?"},
    {"role": "assistant", "content": "Норм, работаю над ботом 🤖 а ты как?"},
    {"role": "user", "content": "Going to the cinema tonight, join?\nAt 8"},
    {"role": "assistant", "content": "Sure, save me a seat!\nI'll bring snacks"},
    {"role": "user", "content": "  spaces and 123 numbers  "},
    {"role": "assistant", "content": "ok ok, see you there at 8 then"},
]


def _spec(tokenizer: Any) -> CloneSpec:
    return CloneSpec(
        base_model="tiny",
        dataset=DatasetConfig(system_prompt=SYSTEM),
        chat_template=str(tokenizer.chat_template),
    )


def test_the_tiny_models_tokenizer_files_and_a_resaved_copy_are_one_tokenizer(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """The tiny model's folder holds the fixture's files as they are; a training run saves the
    tokenizer again (as ``tokenizer.json``) beside its adapter. Tests compare prompts and
    replies across the two, so they must be the same tokenizer."""
    from transformers import AutoTokenizer

    original = AutoTokenizer.from_pretrained(tiny_model_dir)
    original.save_pretrained(tmp_path / "resaved")
    assert (tmp_path / "resaved" / "tokenizer.json").is_file()
    assert not (tiny_model_dir / "tokenizer.json").exists()
    resaved = AutoTokenizer.from_pretrained(tmp_path / "resaved")
    assert resaved.get_vocab() == original.get_vocab()
    assert resaved.chat_template == original.chat_template
    assert (resaved.pad_token, resaved.eos_token) == (original.pad_token, original.eos_token)
    messages = [
        {"role": "system", "content": "Ты — владелец."},
        {"role": "user", "content": "Привет! 😀 see you at 7?\n\n\tok <|endoftext|>"},
        {"role": "assistant", "content": "日本語 and  two  spaces"},
    ]
    text = resaved.apply_chat_template(messages, tokenize=False)
    assert text == original.apply_chat_template(messages, tokenize=False)
    assert resaved(text)["input_ids"] == original(text)["input_ids"]


def test_serving_prompt_is_the_training_prefix(qwen_tokenizer: Any) -> None:
    spec = _spec(qwen_tokenizer)
    training_text = render(
        qwen_tokenizer,
        build_messages(SYSTEM, TURNS),
        chat_template=spec.chat_template,
        add_generation_prompt=False,
    )
    for index, turn in enumerate(TURNS):
        if turn["role"] != "assistant":
            continue
        prompt = render_prompt(qwen_tokenizer, spec, TURNS[:index])
        assert prompt.endswith("<|im_start|>assistant\n")
        assert training_text.startswith(prompt)
        assert training_text[len(prompt) :].startswith(turn["content"] + END_OF_TURN)


def test_none_template_means_the_tokenizers_own(qwen_tokenizer: Any) -> None:
    messages = build_messages(SYSTEM, TURNS[:1])
    own = render(qwen_tokenizer, messages, chat_template=None, add_generation_prompt=True)
    explicit = render(
        qwen_tokenizer,
        messages,
        chat_template=str(qwen_tokenizer.chat_template),
        add_generation_prompt=True,
    )
    assert own == explicit
    assert own.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n")


def _runs(mask: list[int]) -> list[tuple[int, int]]:
    runs, start = [], None
    for index, bit in enumerate([*mask, 0]):
        if bit and start is None:
            start = index
        elif not bit and start is not None:
            runs.append((start, index))
            start = None
    return runs


def test_loss_mask_covers_exactly_owner_turns_and_their_im_end(qwen_tokenizer: Any) -> None:
    messages = build_messages(SYSTEM, TURNS)
    encoded = tokenize_for_training(qwen_tokenizer, messages, chat_template=None, max_length=4096)
    ids, mask = encoded["input_ids"], encoded["assistant_masks"]
    assert len(ids) == len(mask)
    text, _ = assistant_spans(qwen_tokenizer, messages, chat_template=None)
    assert ids == qwen_tokenizer(text, add_special_tokens=False)["input_ids"]

    owner = [t["content"] for t in TURNS if t["role"] == "assistant"]
    runs = _runs(mask)
    assert len(runs) == len(owner)
    im_end = qwen_tokenizer.convert_tokens_to_ids(END_OF_TURN)
    newline = qwen_tokenizer("\n", add_special_tokens=False)["input_ids"]
    for (start, end), content in zip(runs, owner, strict=True):
        assert qwen_tokenizer.decode(ids[start:end]) == content + END_OF_TURN
        assert ids[end - 1] == im_end
        # The template's newline after <|im_end|> is not the owner's: outside the loss.
        assert ids[end : end + 1] == newline and mask[end] == 0
        # The prompt opening right before the turn is outside the loss.
        assert qwen_tokenizer.decode(ids[start - 3 : start]) == "<|im_start|>assistant\n"
    unmasked = qwen_tokenizer.decode([i for i, bit in zip(ids, mask, strict=True) if not bit])
    assert SYSTEM in unmasked
    assert all(t["content"] in unmasked for t in TURNS if t["role"] == "user")
    assert not any(content in unmasked for content in owner)
    # Every <|im_end|> of system and user turns stays out of the loss.
    assert sum(1 for i, bit in zip(ids, mask, strict=True) if i == im_end and bit) == len(owner)


def test_context_owner_turns_are_seen_but_not_trained(qwen_tokenizer: Any) -> None:
    context: list[ChatMessage] = [
        {**message, "weight": 0} if index in (1, 3) else message
        for index, message in enumerate(TURNS)
    ]
    messages = build_messages(SYSTEM, context)
    encoded = tokenize_for_training(qwen_tokenizer, messages, chat_template=None, max_length=4096)
    ids, mask = encoded["input_ids"], encoded["assistant_masks"]
    # The same text as without weights: the model sees the context turn...
    plain = tokenize_for_training(
        qwen_tokenizer, build_messages(SYSTEM, TURNS), chat_template=None, max_length=4096
    )
    assert ids == plain["input_ids"]
    # ...but only the last owner turn is in the loss.
    [(start, end)] = _runs(mask)
    assert qwen_tokenizer.decode(ids[start:end]) == TURNS[5]["content"] + END_OF_TURN
    with pytest.raises(ValueError, match="trained assistant turn"):
        tokenize_for_training(
            qwen_tokenizer,
            [*messages[:-1], {**messages[-1], "weight": 0}],
            chat_template=None,
            max_length=4096,
        )


def test_too_long_samples_lose_their_oldest_pairs_not_the_last_reply(
    qwen_tokenizer: Any,
) -> None:
    messages = build_messages(SYSTEM, TURNS)
    full = tokenize_for_training(qwen_tokenizer, messages, chat_template=None, max_length=4096)
    last_two = build_messages(SYSTEM, TURNS[2:])
    expected = tokenize_for_training(qwen_tokenizer, last_two, chat_template=None, max_length=4096)
    limit = len(expected["input_ids"])
    assert limit < len(full["input_ids"])
    cut = tokenize_for_training(qwen_tokenizer, messages, chat_template=None, max_length=limit)
    assert cut == expected
    # Below one pair nothing more is dropped; the caller sees it is still too long.
    last = tokenize_for_training(qwen_tokenizer, messages, chat_template=None, max_length=5)
    assert qwen_tokenizer.decode(last["input_ids"]).endswith(TURNS[-1]["content"] + "<|im_end|>\n")
    assert len(last["input_ids"]) > 5


def test_training_samples_must_be_system_first_and_end_on_owner(qwen_tokenizer: Any) -> None:
    with pytest.raises(ValueError, match="system"):
        tokenize_for_training(qwen_tokenizer, TURNS[:2], chat_template=None, max_length=64)
    with pytest.raises(ValueError, match="assistant"):
        tokenize_for_training(
            qwen_tokenizer, build_messages(SYSTEM, TURNS[:1]), chat_template=None, max_length=64
        )
    with pytest.raises(ValueError, match="role"):
        build_messages(SYSTEM, [TURNS[0], {"role": "system", "content": "x"}])
    # A system message first (the system prompt with its memory block) takes the place of
    # the system prompt.
    with_block = build_messages(SYSTEM, [{"role": "system", "content": "x"}, TURNS[0]])
    assert with_block == [{"role": "system", "content": "x"}, TURNS[0]]


def test_clone_spec_round_trip(tmp_path: Path, qwen_tokenizer: Any) -> None:
    spec = CloneSpec(
        base_model="Qwen/Qwen2.5-7B-Instruct",
        dataset=DatasetConfig(system_prompt=SYSTEM, merge_window=timedelta(minutes=5)),
        chat_template=str(qwen_tokenizer.chat_template),
        generation=GenerationSettings(temperature=0.5),
        metrics={"eval_loss": 1.5, "eval_mean_token_accuracy": 0.4},
        dataset_size=12,
        dataset_fingerprint="ab" * 32,
    )
    path = save_clone_spec(tmp_path, spec)
    assert path == tmp_path / "clone.json"
    assert load_clone_spec(tmp_path) == spec
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["format_version"] == 3 and saved["dataset"]["merge_window"] == 300
    assert saved["dataset"]["memory"] is True and saved["memory_index_version"] == 0
    # A version-2 file (before memory) serves without memory blocks, as it was trained.
    version_2 = {**saved, "format_version": 2}
    version_2["dataset"] = {
        k: v for k, v in saved["dataset"].items() if not k.startswith("memory")
    }
    path.write_text(json.dumps(version_2), encoding="utf-8")
    assert not load_clone_spec(tmp_path).dataset.memory
    # A version-1 file (no dataset rules) reads with the shaping of its time.
    del saved["dataset"]
    saved["format_version"] = 1
    path.write_text(json.dumps(saved), encoding="utf-8")
    old = load_clone_spec(tmp_path)
    assert old.system_prompt == SYSTEM and old.dataset.owner_starts == "drop"


def test_load_clone_spec_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CloneSpecError, match=r"clone\.json not found"):
        load_clone_spec(tmp_path)
    (tmp_path / "clone.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CloneSpecError, match=r"clone\.json is unreadable"):
        load_clone_spec(tmp_path)
    (tmp_path / "clone.json").write_text('{"format_version": 1}', encoding="utf-8")
    with pytest.raises(CloneSpecError, match=r"clone\.json is incomplete"):
        load_clone_spec(tmp_path)
    (tmp_path / "clone.json").write_text('{"format_version": 9}', encoding="utf-8")
    with pytest.raises(CloneSpecError, match="format_version 9"):
        load_clone_spec(tmp_path)
