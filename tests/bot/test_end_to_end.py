"""The whole loop through the real app: upload an export, /retrain, and talk to the clone."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.bot.conftest import ALLOWED_ID, bot_settings, running_clone
from tests.export_factory import OWNER_ID, full_export
from tests.fake_telegram import builders
from tests.fake_telegram.server import FakeTelegramServer

OWNER = builders.user(OWNER_ID, "Owner")
FRIEND = builders.user(ALLOWED_ID, "Friend")
QUESTION = "Привет! Что нового?"


def _greedy_reply(adapter_dir: Path, question: str) -> str:
    """What the saved adapter answers, computed without any tgclone serving code."""
    from peft import PeftModel

    spec = json.loads((adapter_dir / "clone.json").read_text("utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    base = AutoModelForCausalLM.from_pretrained(spec["base_model"], dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    messages = [
        {"role": "system", "content": spec["system_prompt"]},
        {"role": "user", "content": question},
    ]
    prompt = tokenizer.apply_chat_template(
        messages, chat_template=spec["chat_template"], add_generation_prompt=True, tokenize=False
    )
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            do_sample=False,
            max_new_tokens=12,
            repetition_penalty=spec["generation"]["repetition_penalty"],
            eos_token_id=tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"]),
            pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        )
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return text.strip() or "…"


async def test_export_retrain_and_reply(
    fake_telegram: FakeTelegramServer, tmp_path: Path, tiny_model_dir: Path
) -> None:
    settings = bot_settings(fake_telegram, tmp_path / "data", base_model=str(tiny_model_dir))
    export = json.dumps(full_export(conversations=14), ensure_ascii=False).encode()
    async with running_clone(settings):
        # Before any adapter, the clone says so instead of answering.
        fake_telegram.send_text(FRIEND, QUESTION)
        await fake_telegram.wait_for_message(
            ALLOWED_ID, lambda m: "owner has not trained me" in m.get("text", "")
        )

        fake_telegram.send_document(OWNER, export, "result.json", mime_type="application/json")
        report = await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: m.get("text", "").startswith("Import finished"), timeout=30
        )
        assert "Messages: 58 (30 yours)" in report["text"]
        assert "New: 58, already present: 0" in report["text"]

        fake_telegram.send_command(OWNER, "/retrain")
        await fake_telegram.wait_for_message(OWNER_ID, lambda m: "started" in m.get("text", ""))
        fake_telegram.send_command(OWNER, "/retrain")
        await fake_telegram.wait_for_message(
            OWNER_ID, lambda m: "already in progress" in m.get("text", "")
        )
        done = await fake_telegram.wait_for_message(
            OWNER_ID,
            lambda m: "finished" in m.get("text", "") or "failed" in m.get("text", ""),
            timeout=240,
        )
        assert "finished: eval_loss" in done["text"], done["text"]
        assert "mean token accuracy" in done["text"]

        fake_telegram.send_text(FRIEND, QUESTION)
        reply = await fake_telegram.wait_for_message(
            ALLOWED_ID, lambda m: "owner has not trained me" not in m.get("text", ""), timeout=60
        )
    adapters = [p.parent for p in (tmp_path / "data" / "runs").rglob("clone.json")]
    assert len(adapters) == 1
    assert reply["text"] == _greedy_reply(adapters[0], QUESTION)
    assert reply["text"] != "…", "the trained tiny model should produce some text"
