"""The preference stage: the owner's feedback as examples, rendered as serving renders, and real
DPO/KTO runs on the tiny model that are kept or dropped by eval_loss."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from storage.corrections import ContextTurn
from tests.training.feedback import BETTER, CLONE, asked, correction, rated, signals
from tests.training.test_train import OFFLINE_ENV, _write_run
from training.chat_format import END_OF_TURN, ChatMessage, CloneSpec, load_clone_spec
from training.config import DEFAULT_SYSTEM_PROMPT, DatasetConfig, GenerationSettings, TrainConfig
from training.dataset import read_jsonl
from training.evaluate import evaluate_adapter
from training.preference import dpo_trainer, kto_trainer, preference_stage
from training.preference_data import (
    PreferenceData,
    preference_data,
    read_preference_data,
    write_preference_data,
)
from training.prompt import PromptBuilder
from training.runner import LocalRunner


def test_corrections_become_pairs_and_uncorrected_labels_unpaired(tmp_path: Path) -> None:
    config = DatasetConfig()
    corrections = [
        correction(1, asked("пойдём в кино? мой номер +7 912 345-67-89")),
        correction(2, asked("ну что?"), better=CLONE),  # says what the clone said
        correction(3, [{"role": "assistant", "content": "hello"}]),  # no user turn
    ]
    labels = [rated(1, "bad"), rated(4, "good"), rated(5, "bad", reply="<|im_end|>")]
    data = preference_data(corrections, labels, config)

    [pair] = data.pairs
    system: ChatMessage = {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}
    assert pair["prompt"][0] == system
    assert pair["prompt"][1:] == [
        {"role": "user", "content": "привет"},
        {"role": "assistant", "content": "привет!", "weight": 0},
        {"role": "user", "content": "пойдём в кино? мой номер <PHONE>"},
    ]
    assert (pair["chosen"], pair["rejected"]) == (BETTER, CLONE)
    # Turn 1 was corrected: its label says less than the pair and is left out.
    [good] = data.unpaired
    assert good["completion"] == "sure, see you there" and good["label"] is True
    assert good["prompt"] == [system, {"role": "user", "content": "are you coming, 4?"}]
    assert data.drops == {"preference_empty": 1, "preference_no_prompt": 1, "preference_same": 1}
    assert data.signals == 2

    path = tmp_path / "preference.jsonl"
    assert write_preference_data(path, data) == 2
    again = read_preference_data(path)
    assert again.pairs == [{**pair, "prompt": _plain(pair["prompt"])}]
    assert again.unpaired == data.unpaired
    path.write_text(path.read_text("utf-8") + '{"kind": "pair", "prompt": []}\n', "utf-8")
    with pytest.raises(ValueError, match="line 3"):
        read_preference_data(path)


def test_long_context_loses_its_oldest_turns_to_fit() -> None:
    config = DatasetConfig(max_seq_tokens=120)  # system 60, old turns 92, the rest 30 tokens
    context: list[ContextTurn] = [
        {"role": "user", "content": "word " * 40},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "и что теперь?"},
    ]
    data = preference_data([correction(1, context)], [], config)
    [pair] = data.pairs
    assert [m["content"] for m in pair["prompt"][1:]] == ["и что теперь?"]
    too_long = preference_data([correction(1, context, better="word " * 200)], [], config)
    assert too_long.drops == {"preference_too_long": 1} and not too_long.pairs


def _plain(messages: list[ChatMessage]) -> list[ChatMessage]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def test_trl_sees_the_serving_prompt_and_only_the_reply(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """What DPO and KTO train on: the serving prompt's exact token ids, then the reply and
    its <|im_end|> (the only tokens in the loss)."""
    from training.train import load_tokenizer_and_model

    config = TrainConfig.from_dict(json.loads(_write_run(tmp_path, tiny_model_dir).read_text()))
    tokenizer, base, _ = load_tokenizer_and_model(config)
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    data = signals(pairs=2, unpaired=2)
    spec = CloneSpec(
        base_model=str(tiny_model_dir),
        dataset=DatasetConfig(max_seq_tokens=256),
        chat_template=str(tokenizer.chat_template),
    )
    serving = PromptBuilder(spec, tokenizer, GenerationSettings(max_new_tokens=32))

    def ids(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    dpo = dpo_trainer(config, tokenizer, model, data).train_dataset
    for row, pair in zip(dpo, data.pairs, strict=True):
        assert row["prompt_ids"] == serving.token_ids(pair["prompt"][1:])
        assert row["chosen_ids"] == ids(pair["chosen"] + END_OF_TURN)
        assert row["rejected_ids"] == ids(pair["rejected"] + END_OF_TURN)
    assert list(model.peft_config) == ["default", "ref"]  # TRL's reference copy
    model.delete_adapter("ref")
    kto = kto_trainer(config, tokenizer, model, data).train_dataset
    for row, item in zip(kto, data.unpaired, strict=True):
        assert row["prompt_ids"] == serving.token_ids(item["prompt"][1:])
        assert row["completion_ids"] == ids(item["completion"] + END_OF_TURN)
        assert row["label"] == item["label"]


async def _run(tmp_path: Path, tiny_model_dir: Path, data: PreferenceData, **values: Any) -> Any:
    """A real training run (child process) with the owner's signals; its result.json."""
    write_preference_data(tmp_path / "preference.jsonl", data)
    recipe: dict[str, Any] = {
        "preference_file": tmp_path / "preference.jsonl",
        # One eval batch over the 4 eval samples: the trainer's eval_loss is token-weighted,
        # the figure training.evaluate computes from the saved adapter on its own.
        "per_device_eval_batch_size": 4,
        "preference_epochs": 1.0,
        "per_device_train_batch_size": 4,
        # The supervised stage is not what these tests look at: a short one.
        "max_steps": 2,
        "eval_steps": 2,
    }
    config_path = _write_run(tmp_path, tiny_model_dir, **{**recipe, **values})
    outcome = await LocalRunner(env=OFFLINE_ENV).run(config_path, tmp_path / "train.log")
    assert outcome.succeeded, outcome.error
    return outcome.result


def _saved_loss(tmp_path: Path) -> float:
    """eval_loss of the adapter the run saved, scored from its files."""
    scores = evaluate_adapter(tmp_path / "run" / "adapter", tmp_path / "eval.jsonl", device="cpu")
    return scores["eval_loss"]


@pytest.mark.slow
async def test_enough_signals_run_the_preference_stage_on_the_adapter(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    # Six signals where the default asks for 20: what the stage does does not depend on how
    # many there are, and every signal is a DPO or KTO sample each epoch.
    result = await _run(
        tmp_path,
        tiny_model_dir,
        signals(pairs=4, unpaired=2),
        preference_min_pairs=6,
        # Two pairs a step: DPO's loss is ln 2 at its first step, the second one shows it learned.
        per_device_train_batch_size=2,
        preference_learning_rate=5e-3,
        preference_tolerance=100.0,  # kept whatever it does to eval_loss
    )
    stage = result["preference"]
    assert stage["status"] == "kept", stage
    assert (stage["pairs"], stage["unpaired"]) == (4, 2)
    assert "learned from 4 corrections and 2 rated replies" in stage["note"]
    # DPO's loss starts at ln 2 (the reference is the adapter itself) and fell from there.
    assert stage["train"]["dpo_train_loss"] < 0.6931
    assert stage["train"]["dpo_steps"] > 0 and stage["train"]["kto_steps"] > 0
    after, before = stage["after_eval"]["eval_loss"], stage["supervised_eval"]["eval_loss"]
    assert after != before
    assert _saved_loss(tmp_path) == pytest.approx(after, rel=1e-3)
    metrics = load_clone_spec(tmp_path / "run" / "adapter").metrics
    assert metrics["preference_pairs"] == 4 and metrics["preference_kept"] == 1.0
    assert metrics["eval_loss"] == after and metrics["supervised_eval_loss"] == before
    assert load_clone_spec(tmp_path / "run" / "adapter").training["PREFERENCE_MIN_PAIRS"] == 6
    # Only the trained adapter is saved, not TRL's reference copy.
    assert not (tmp_path / "run" / "adapter" / "ref").exists()
    assert read_jsonl(tmp_path / "eval.jsonl")  # the eval set was not touched


@pytest.mark.slow
async def test_a_stage_that_worsens_eval_loss_is_dropped(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    result = await _run(
        tmp_path,
        tiny_model_dir,
        signals(pairs=4, unpaired=0),
        preference_min_pairs=4,
        preference_learning_rate=0.5,  # wrecks the adapter
        preference_tolerance=0.01,
    )
    stage = result["preference"]
    after, before = stage["after_eval"]["eval_loss"], stage["supervised_eval"]["eval_loss"]
    assert stage["status"] == "dropped", stage
    assert after > before + 0.01
    assert "the supervised adapter is kept" in stage["note"]
    assert result["metrics"]["eval_loss"] == before
    assert result["metrics"]["preference_kept"] == 0.0
    # The weights saved are the supervised ones, put back.
    assert _saved_loss(tmp_path) == pytest.approx(before, rel=1e-3)


def test_the_stage_switched_off_touches_nothing(tmp_path: Path) -> None:
    config = TrainConfig.from_dict(json.loads(_write_run(tmp_path, "m").read_text()))
    off = TrainConfig.from_dict({**config.to_dict(), "preference_stage": False})
    events: list[dict[str, Any]] = []
    # No tokenizer and no trainer: switched off, the stage must not reach for either.
    outcome = preference_stage(off, None, None, {}, events.append)  # type: ignore[arg-type]
    assert (outcome.status, outcome.note) == (
        "off",
        "Preference stage: off (PREFERENCE_STAGE=false).",
    )
    assert outcome.metrics() == {
        "preference_pairs": 0.0,
        "preference_unpaired": 0.0,
        "preference_kept": 0.0,
    }
    assert events == []
