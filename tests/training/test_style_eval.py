"""Style checks of a real (tiny) adapter on held-out conversations, in process and in a child."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.adapters import greedy_reply, make_adapter
from training.chat_format import ChatMessage, CloneSpec
from training.config import DatasetConfig, GenerationSettings
from training.dataset import Sample, write_jsonl
from training.style_checks import style_scores
from training.style_eval import (
    generate_ended,
    generate_replies,
    held_out_pairs,
    main,
    spread,
    style_eval,
)

SYSTEM = {"role": "system", "content": "Ты — это я."}
SAMPLES: list[Sample] = [
    [
        SYSTEM,
        {"role": "user", "content": "Как прошли выходные?"},
        {"role": "assistant", "content": "Отлично, ездили за город"},
        {"role": "user", "content": "А погода?"},
        {"role": "assistant", "content": "Солнце весь день ☀️"},
    ],
    [
        SYSTEM,
        {"role": "user", "content": "See you at 8?"},
        {"role": "assistant", "content": "yep"},
    ],
    [SYSTEM, {"role": "user", "content": "Купишь хлеб?"}, {"role": "assistant", "content": "ок"}],
]


@pytest.fixture(scope="module")
def adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("style-adapter")
    return make_adapter(tiny_model_dir, out, seed=11, system_prompt="Отвечай как я.")


def test_each_sample_gives_its_last_owner_reply_and_the_turns_before() -> None:
    pairs = held_out_pairs([*SAMPLES, [SYSTEM, {"role": "user", "content": "no reply"}]])
    assert len(pairs) == 3
    history, real = pairs[0]
    assert real == "Солнце весь день ☀️"
    assert [m["content"] for m in history] == [
        SYSTEM["content"],
        "Как прошли выходные?",
        "Отлично, ездили за город",
        "А погода?",
    ]
    # The sample's own system message leads (with its memory block, the one serving builds).
    assert all(h[0] == SYSTEM and all("weight" not in m for m in h) for h, _ in pairs)


def test_limit_spreads_the_picks_over_the_whole_file() -> None:
    assert spread(list(range(10)), 3) == [0, 3, 6]
    assert spread(list(range(4)), 4) == [0, 1, 2, 3]
    assert spread([1, 2], 5) == [1, 2]
    with pytest.raises(ValueError, match="at least 1"):
        spread([1], 0)


def test_replies_are_what_the_adapter_answers_with_its_own_prompt(adapter: Path) -> None:
    question = "Как дела?"
    history: list[ChatMessage] = [{"role": "user", "content": question}]
    (reply,) = generate_replies(adapter, [history], max_new_tokens=6, device="cpu")
    # greedy_reply renders clone.json's system prompt and template itself, without tgclone.
    assert (reply or "…") == greedy_reply(adapter, question, max_new_tokens=6)


def test_style_eval_scores_the_generated_against_the_real_replies(
    adapter: Path, tmp_path: Path
) -> None:
    eval_file = tmp_path / "eval.jsonl"
    write_jsonl(eval_file, SAMPLES)
    scores = style_eval(adapter, eval_file, limit=2, max_new_tokens=4, device="cpu")
    picked = spread(held_out_pairs(SAMPLES), 2)
    generated = generate_replies(adapter, [h for h, _ in picked], max_new_tokens=4, device="cpu")
    assert scores == pytest.approx(style_scores(generated, [r for _, r in picked]))
    assert scores["style_samples"] == 2.0
    assert scores["style_distinct_2_owner"] == 1.0


def test_command_line_reports_bad_input_as_one_json_line(
    adapter: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    no_replies = tmp_path / "no-replies.jsonl"
    write_jsonl(no_replies, [[SYSTEM, {"role": "user", "content": "hi"}]])
    not_jsonl = tmp_path / "broken.jsonl"
    not_jsonl.write_text("{not json\n", encoding="utf-8")
    no_adapter = tmp_path / "no-adapter"
    no_adapter.mkdir()
    cases = [
        (["--adapter", str(adapter), "--eval-file", str(no_replies)], "no owner replies"),
        (["--adapter", str(adapter), "--eval-file", str(not_jsonl)], "broken.jsonl:1"),
        (["--adapter", str(adapter), "--eval-file", str(tmp_path / "gone.jsonl")], "gone.jsonl"),
        (["--adapter", str(no_adapter), "--eval-file", str(no_replies)], "clone.json"),
        (["--adapter", str(adapter), "--eval-file", str(no_replies), "--limit", "0"], "--limit"),
    ]
    for argv, expected in cases:
        assert main([*argv, "--device", "cpu"]) == 1
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == 1
        assert expected in json.loads(lines[0])["error"]


def test_a_reply_that_stops_is_told_from_one_cut_at_the_limit(tiny_model_dir: Path) -> None:
    """What keeps cut replies out of the owner's quiz (``training.quiz_set``)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    spec = CloneSpec(
        base_model=str(tiny_model_dir),
        dataset=DatasetConfig(),
        chat_template=str(tokenizer.chat_template),
        generation=GenerationSettings(do_sample=False, max_new_tokens=8),
    )
    history: list[ChatMessage] = [{"role": "user", "content": "Как дела?"}]
    [(text, ended)] = generate_ended(model, tokenizer, spec, [history], max_new_tokens=8)
    assert not ended and len(tokenizer(text, add_special_tokens=False)["input_ids"]) >= 7
    # Logits read one coordinate, where only the two stop tokens are non-zero and of opposite
    # sign: the first token generated is always one of them.
    with torch.no_grad():
        model.model.norm.weight.zero_()
        model.model.norm.weight[0] = 1.0
        embeddings = model.get_input_embeddings().weight
        embeddings[:, 0] = 0.0
        embeddings[tokenizer.convert_tokens_to_ids("<|im_end|>"), 0] = 100.0
        embeddings[tokenizer.convert_tokens_to_ids("<|endoftext|>"), 0] = -100.0
    assert generate_ended(model, tokenizer, spec, [history], max_new_tokens=8) == [("", True)]
