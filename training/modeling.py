"""Loading a base model: its precision, its attention, its weights (4-bit NF4 on CUDA, float32 on
CPU by default).

Serving (bot/engine) and adapter scoring (training/judge, training/evaluate) load models the same
way, in the precision the adapter was trained on (clone.json's ``precision``), so an adapter is
judged on the numbers it will serve with. vLLM serves the same NF4 weights: started with
``--quantization bitsandbytes`` it quantizes the bf16 checkpoint as bitsandbytes does here (NF4,
blocks of 64, double quantization).
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
ServingQuantization = Literal["auto", "4bit", "bf16", "fp32"]
"""auto: the adapter's recorded precision where the device can run it, else 4-bit NF4 on CUDA
and float32 on CPU; 4bit: NF4 (CUDA only); bf16 / fp32: those weights."""
SERVING_QUANTIZATIONS: tuple[ServingQuantization, ...] = ("auto", "4bit", "bf16", "fp32")
Precision = Literal["nf4", "bf16", "fp32"]
"""How a base model's weights are held: NF4 = bitsandbytes 4-bit NormalFloat, double
quantization, bfloat16 compute (QLoRA's); or plain bfloat16 / float32."""
PRECISIONS: tuple[Precision, ...] = ("nf4", "bf16", "fp32")
_QUANTIZATION_OF: dict[str, ServingQuantization] = {"nf4": "4bit", "bf16": "bf16", "fp32": "fp32"}


def quantization_for(precision: str) -> ServingQuantization:
    """The quantization that loads exactly a recorded precision ('' of old adapters: auto)."""
    return _QUANTIZATION_OF.get(precision, "auto")


def resolve_device(device: Device) -> Literal["cpu", "cuda"]:
    """'auto' becomes cuda when a GPU is there, else cpu."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_precision(
    quantization: ServingQuantization, target: Literal["cpu", "cuda"], recorded: str = ""
) -> Precision:
    """The precision ``load_base_model`` loads with: the explicit one, else the adapter's
    ``recorded`` one where ``target`` can run it (NF4 needs CUDA), else the device's default."""
    if quantization == "4bit":
        return "nf4"
    if quantization in ("bf16", "fp32"):
        return quantization
    if recorded in PRECISIONS and (recorded != "nf4" or target == "cuda"):
        return recorded  # type: ignore[return-value]
    return "nf4" if target == "cuda" else "fp32"


def nf4_config() -> Any:
    """QLoRA's NF4: what training, the judge, the engine (and vLLM's bitsandbytes) use."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def load_base_model(
    base_model: str,
    device: Device = "auto",
    quantization: ServingQuantization = "auto",
    *,
    recorded: str = "",
) -> Any:
    """The base model in eval mode, in ``resolve_precision``'s precision.

    ``base_model`` is what ``from_pretrained`` gets (``training.preflight.locate_model``'s
    path); ``recorded`` is the adapter's clone.json precision.

    Raises:
        ValueError: NF4 without CUDA (bitsandbytes NF4 needs a GPU here), or an unknown
            ``quantization``.
    """
    import torch
    from transformers import AutoModelForCausalLM

    if quantization not in SERVING_QUANTIZATIONS:
        raise ValueError(
            f"quantization must be one of {SERVING_QUANTIZATIONS}, got {quantization!r}"
        )
    target = resolve_device(device)
    precision = resolve_precision(quantization, target, recorded)
    if precision == "nf4" and target != "cuda":
        raise ValueError(
            "4-bit (nf4) weights need a CUDA GPU; use 'bf16' or 'auto' (float32) on the CPU"
        )
    logger.info("loading base model %s on %s (%s)", base_model, target, precision)
    placement = {"": 0} if target == "cuda" else None
    if precision == "nf4":
        model = AutoModelForCausalLM.from_pretrained(
            base_model,
            quantization_config=nf4_config(),
            dtype=torch.bfloat16,
            device_map=placement,
        )
    else:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        model = AutoModelForCausalLM.from_pretrained(base_model, dtype=dtype, device_map=placement)
    return model.eval()


def attention_implementation(cuda: bool) -> str:
    """flash_attention_2 on CUDA when transformers finds flash-attn and it loads, else sdpa.

    Both keep padding-free samples apart: flash-attention through ``cu_seq_lens``, sdpa through
    the block-diagonal mask transformers builds from restarting position ids.
    """
    if not cuda:
        return "sdpa"
    from transformers.utils import is_flash_attn_2_available

    try:
        available = is_flash_attn_2_available()
    except (ImportError, OSError) as exc:  # an install without metadata is imported to check
        logger.warning("flash-attention 2 does not load (%s); attention: sdpa", _first_line(exc))
        return "sdpa"
    if not available:
        logger.info("flash-attention 2 is not available; attention: sdpa")
        return "sdpa"
    problem = flash_attn_load_error()
    if problem is not None:
        logger.warning(
            "flash-attention 2 is installed but does not load (%s); attention: sdpa", problem
        )
        return "sdpa"
    return "flash_attention_2"


def flash_attn_load_error() -> str | None:
    """Why the installed flash_attn cannot be imported (None: it imports).

    transformers' availability check reads the package's metadata only; a build for another
    torch or CUDA fails when its extension loads, which would be in the middle of loading the
    model.
    """
    try:
        import flash_attn  # noqa: F401
        from flash_attn import flash_attn_varlen_func  # noqa: F401
    except (ImportError, OSError) as exc:
        return _first_line(exc)
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


def load_adapter_tokenizer(adapter_dir: Path, base_model: str) -> PreTrainedTokenizerBase:
    """The tokenizer saved beside the adapter (else the base model's), pad = <|endoftext|>."""
    from transformers import AutoTokenizer

    source = adapter_dir if (adapter_dir / "tokenizer_config.json").exists() else None
    tokenizer = AutoTokenizer.from_pretrained(str(source or base_model))
    tokenizer.pad_token = PAD_TOKEN
    return tokenizer
