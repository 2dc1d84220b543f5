"""Adapters for serving tests, and what an adapter answers computed without tgclone's engine."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from storage.memory import INDEX_VERSION
from tests.tiny_model import copy_tokenizer
from training.chat_format import CloneSpec, load_clone_spec, save_clone_spec
from training.config import DatasetConfig, GenerationSettings

ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]


def make_adapter(base_dir: Path, out_dir: Path, *, seed: int, system_prompt: str) -> Path:
    """A random (non-identity) LoRA adapter of `base_dir` with its clone.json, no training.

    The same (base, seed, system prompt) gives the same weights: each is built once per
    process and copied (with a fresh ``created_at``), the copy the caller's to change."""
    key = (str(base_dir), seed, system_prompt)
    if key not in _BUILT:
        folder = base_dir.parent / f"{base_dir.name}-adapters" / str(len(_BUILT))
        _BUILT[key] = _build_adapter(base_dir, folder, seed=seed, system_prompt=system_prompt)
    shutil.copytree(_BUILT[key], out_dir, dirs_exist_ok=True)
    spec = load_clone_spec(out_dir)
    save_clone_spec(out_dir, replace(spec, created_at=datetime.now(UTC).isoformat()))
    return out_dir


_BUILT: dict[tuple[str, int, str], Path] = {}


def _build_adapter(base_dir: Path, out_dir: Path, *, seed: int, system_prompt: str) -> Path:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=16, target_modules=ATTENTION, init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(out_dir)
    copy_tokenizer(base_dir, out_dir)
    save_clone_spec(
        out_dir,
        CloneSpec(
            base_model=str(base_dir),
            dataset=DatasetConfig(system_prompt=system_prompt),
            chat_template=(base_dir / "chat_template.jinja").read_text("utf-8"),
            generation=GenerationSettings(do_sample=False, max_new_tokens=10),
            metrics={"eval_loss": 1.0},
            dataset_size=1,
            dataset_fingerprint=f"seed-{seed}",
            memory_index_version=INDEX_VERSION,
            created_at=datetime.now(UTC).isoformat(),
        ),
    )
    return out_dir


def greedy_reply(adapter_dir: Path, question: str, max_new_tokens: int) -> str:
    """What the saved adapter answers greedily, read straight from its files."""
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
            max_new_tokens=max_new_tokens,
            repetition_penalty=spec["generation"]["repetition_penalty"],
            eos_token_id=tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"]),
            pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        )
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return text.strip() or "…"
