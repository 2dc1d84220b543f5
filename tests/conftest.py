"""Suite-wide fixtures. Package-specific ones live beside their tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tiny_model import TOKENIZER_DIR, build_tiny_model_dir
from tests.trained_clone import TrainedClone, train_clone

pytest_plugins = ["tests.fake_telegram.fixtures", "tests.hub"]

# Nothing is ever fetched from a model hub in tests (CI has no internet): fail fast instead.
os.environ["HF_HUB_OFFLINE"] = "1"
# Nothing here uses torch.compile, but bitsandbytes wraps its kernels in it when it is imported
# (PEFT and transformers import it), which imports TorchDynamo and Inductor: 1.7 s of the start
# of every training and judging process, about thirty per run of the suite. Disabled, torch.compile
# hands the functions back unchanged (what bitsandbytes falls back to anyway where it cannot
# compile).
os.environ["TORCHDYNAMO_DISABLE"] = "1"
# glibc serves allocations over 32 MiB with mmap and unmaps them when they are freed, so the
# vocabulary-wide logits of every training step (151,936 floats a token) come back as fresh
# pages the kernel must fault in and zero: 4.7 M page faults, 9 s of the 21 s that the GPU
# benchmark's baseline variant trains for on CPU. Kept on the heap, they are reused. glibc
# reads these when a process starts: the xdist workers and every process they start get them,
# this one does not.
os.environ["MALLOC_MMAP_MAX_"] = "0"
os.environ["MALLOC_TRIM_THRESHOLD_"] = str(4 << 30)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (training, judging, a bot in its own process) go first: xdist
    hands tests out in this order, so the workers share them and end together instead of one
    finishing a long test alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist the workers already share the cores: each torch process (a worker, or a
    training or judging child it starts) takes one thread, not one per core, which thrashes."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


# --- training fixtures: a tiny random Qwen2 and the real Qwen2.5-Instruct tokenizer ---------


@pytest.fixture(scope="session")
def qwen_tokenizer() -> Any:
    """The real Qwen2.5-Instruct tokenizer from tests/fixtures (nothing downloaded)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(TOKENIZER_DIR)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A saved tiny random Qwen2ForCausalLM with the real tokenizer, built once per session."""
    yield build_tiny_model_dir(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def trained_clone(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> TrainedClone:
    """A clone trained through the real pipeline once per session (copy it before changing it)."""
    return train_clone(tmp_path_factory.mktemp("trained-clone"), tiny_model_dir)


# --- end of training fixtures ----------------------------------------------------------------
