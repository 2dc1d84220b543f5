"""Loading a base model for inference: 4-bit NF4 on CUDA, float32 on CPU (or bf16, on request).

Serving (bot/engine) and adapter scoring (training/evaluate) load models the same way, so an
adapter is judged on the numbers it will serve with.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from training.chat_format import PAD_TOKEN

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Device = Literal["auto", "cpu", "cuda"]
ServingQuantization = Literal["auto", "4bit", "bf16"]
"""auto: 4-bit NF4 on CUDA, float32 on CPU; 4bit: NF4 (CUDA only); bf16: bfloat16 weights."""
SERVING_QUANTIZATIONS: tuple[ServingQuantization, ...] = ("auto", "4bit", "bf16")


def resolve_device(device: Device) -> Literal["cpu", "cuda"]:
    """'auto' becomes cuda when a GPU is there, else cpu."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_base_model(
    base_model: str, device: Device = "auto", quantization: ServingQuantization = "auto"
) -> Any:
    """The base model in eval mode, by default NF4 4-bit (double quant, bf16 compute) on CUDA.

    Raises:
        ValueError: ``quantization="4bit"`` without CUDA (bitsandbytes NF4 needs a GPU here),
            or an unknown ``quantization``.
    """
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if quantization not in SERVING_QUANTIZATIONS:
        raise ValueError(
            f"quantization must be one of {SERVING_QUANTIZATIONS}, got {quantization!r}"
        )
    target = resolve_device(device)
    if quantization == "4bit" and target != "cuda":
        raise ValueError(
            "4-bit quantization needs a CUDA GPU; use 'bf16' or 'auto' (float32) on the CPU"
        )
    logger.info("loading base model %s on %s (%s)", base_model, target, quantization)
    if target == "cuda" and quantization in ("auto", "4bit"):
        quant = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        model = AutoModelForCausalLM.from_pretrained(
            base_model, quantization_config=quant, dtype=torch.bfloat16, device_map={"": 0}
        )
    elif quantization == "bf16":
        placement = {"": 0} if target == "cuda" else None
        model = AutoModelForCausalLM.from_pretrained(
            base_model, dtype=torch.bfloat16, device_map=placement
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    return model.eval()


def load_adapter_tokenizer(adapter_dir: Path, base_model: str) -> PreTrainedTokenizerBase:
    """The tokenizer saved beside the adapter (else the base model's), pad = <|endoftext|>."""
    from transformers import AutoTokenizer

    source = adapter_dir if (adapter_dir / "tokenizer_config.json").exists() else None
    tokenizer = AutoTokenizer.from_pretrained(str(source or base_model))
    tokenizer.pad_token = PAD_TOKEN
    return tokenizer
