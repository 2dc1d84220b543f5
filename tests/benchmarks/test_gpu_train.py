"""benchmarks/gpu_train.py: Qwen2.5-7B's shapes without allocating, the no-CUDA refusal, and
its whole code path (checkpoint, recipe, timing, report) on a tiny model on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import gpu_train

# Qwen/Qwen2.5-7B-Instruct's model card: 7.61 B parameters.
QWEN25_7B_PARAMETERS = 7_615_616_512


def test_the_model_has_qwen25_7b_shapes_without_allocating() -> None:
    import torch
    from transformers import Qwen2ForCausalLM

    config = gpu_train.model_config(tiny=False)
    shapes = (config.hidden_size, config.num_hidden_layers, config.num_attention_heads)
    assert shapes == (3584, 28, 28)
    assert (config.num_key_value_heads, config.intermediate_size) == (4, 18944)
    assert config.vocab_size == 152064 and not config.tie_word_embeddings
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    counted = sum(p.numel() for p in model.parameters())
    assert counted == gpu_train.parameter_count(config) == QWEN25_7B_PARAMETERS
    tiny = gpu_train.model_config(tiny=True)
    with torch.device("meta"):
        assert sum(p.numel() for p in Qwen2ForCausalLM(tiny).parameters()) == (
            gpu_train.parameter_count(tiny)
        )


def test_it_refuses_to_run_without_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert gpu_train.main(["--steps", "1"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


@pytest.mark.slow
def test_the_recipe_and_baseline_run_on_a_tiny_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--device", "cpu", "--tiny", "--steps", "1", "--warmup-steps", "1"]
    argv += ["--conversations", "8", "--eval-conversations", "2", "--workdir", str(tmp_path)]
    argv += ["--micro-batch", "2", "--grad-accum", "1"]
    status = gpu_train.main(argv)
    out = capsys.readouterr().out
    assert status in (0, 1)  # CPU figures are not judged, only produced
    results = json.loads(out[out.index("{") : out.rindex("}") + 1])
    recipe, baseline = results["recipe"], results["baseline"]
    for figures in (recipe, baseline):
        assert figures["timed_steps"] == 1 and figures["tokens_per_s"] > 0
        assert figures["loss_tokens"] == figures["owner_tokens"] > 0
        assert figures["steps_per_epoch"] == 4 and figures["projected_minutes"] > 0
        assert not figures["quantized"] and figures["attention"] == "sdpa"
    assert recipe["token_efficiency"] == 1.0 > baseline["token_efficiency"]
    assert recipe["real_tokens"] == baseline["real_tokens"]
    assert "recipe tokens/s >= 1.5x baseline" in out and "5 epochs" in out
    assert (tmp_path / "model" / "tokenizer_config.json").is_file()
