"""A tiny random Qwen2 with the real Qwen2.5-Instruct tokenizer, for CPU training tests.

Nothing is downloaded: the tokenizer comes from ``tests/fixtures`` and the weights are drawn
from a fixed seed. ``initializer_range=0.2`` (instead of 0.02) gives the attention layers
enough signal for an attention-only LoRA to visibly lower the loss within a few steps.

The tokenizer's files are copied as they are (``vocab.json`` and ``merges.txt``, the real
repository's slow-format files): transformers reads them in a third of the time a re-saved
``tokenizer.json`` takes (0.35 s against 1.2 s here), and the suite loads a tokenizer a few
hundred times.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

TOKENIZER_DIR = Path(__file__).parent / "fixtures" / "qwen2.5-instruct-tokenizer"
TINY_SEED = 1234
# The real checkpoint's embedding rows (151,665 tokens padded up to a multiple of 128).
VOCAB_SIZE = 151936
TOKENIZER_FILES = frozenset(
    {
        "added_tokens.json",
        "chat_template.jinja",
        "merges.txt",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.json",
    }
)


TORCH_SETTINGS = (
    "OMP_NUM_THREADS",
    "TORCHDYNAMO_DISABLE",
    "MALLOC_MMAP_MAX_",
    "MALLOC_TRIM_THRESHOLD_",
)
"""What the suite sets for every torch process it runs (tests/conftest.py)."""


def torch_env() -> dict[str, str]:
    """``TORCH_SETTINGS`` as this process has them: for a child given an environment of its
    own, so that it shares the cores and starts as the suite's other torch processes do."""
    return {name: os.environ[name] for name in TORCH_SETTINGS if name in os.environ}


def copy_tokenizer(source: Path, folder: Path) -> None:
    """The tokenizer files of ``source`` (a model folder or the fixture) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for file in source.iterdir():
        if file.name in TOKENIZER_FILES:
            shutil.copyfile(file, folder / file.name)


def build_tiny_model_dir(path: Path) -> Path:
    """Save a random tiny ``Qwen2ForCausalLM`` and the real tokenizer into ``path``."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_DIR)
    config = Qwen2Config(
        vocab_size=VOCAB_SIZE,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        initializer_range=0.2,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(TINY_SEED)
    model = Qwen2ForCausalLM(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    copy_tokenizer(TOKENIZER_DIR, path)
    return path
