"""The preflight: where BASE_MODEL is (a folder, the hub cache, the hub), answered in seconds with
the hub unreachable, and the refusal of a base this machine cannot train."""

from __future__ import annotations

import json
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hub import (
    HUB_MODEL,
    assert_says_how_to_provide,
    hub_env,
    refused_endpoint,
)
from tests.tiny_model import TOKENIZER_DIR
from tests.training.test_gpus import fake_nvidia_smi
from training.gpus import Gpu
from training.preflight import (
    CPU_TRIAL_MODEL,
    PROBE_SECONDS,
    HardwareError,
    ModelSource,
    ModelUnavailableError,
    check_training_hardware,
    count_parameters,
    locate_model,
    preflight_run,
    probe_seconds,
)
from training.settings import PipelineSettings

QWEN25_7B_PARAMETERS = 7_615_616_512  # its model card
PREFLIGHT_LIMIT_SECONDS = 5.0


LOCATE = """
import json, sys, time
from training.preflight import ModelUnavailableError, locate_model
started = time.perf_counter()
try:
    source = locate_model(sys.argv[1], sys.argv[2])
    outcome = {"where": source.where, "path": source.path, "parameters": source.parameters}
except ModelUnavailableError as exc:
    outcome = {"error": str(exc)}
outcome["seconds"] = time.perf_counter() - started
print(json.dumps(outcome))
"""


def locate_in_child(env: dict[str, str], name: str, needs: str = "all") -> dict[str, object]:
    """``locate_model`` in a fresh process (the hub client reads its settings at import)."""
    done = subprocess.run(
        [sys.executable, "-c", LOCATE, name, needs],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_local_folder_is_loaded_from_as_is_and_its_size_read_from_headers(
    tiny_model_dir: Path,
) -> None:
    from transformers import AutoModelForCausalLM

    source = locate_model(str(tiny_model_dir), "all")
    assert (source.where, source.path) == ("folder", str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert source.parameters == sum(p.numel() for p in model.parameters())


def test_a_folder_that_lacks_files_is_refused_naming_them(tmp_path: Path) -> None:
    folder = tmp_path / "half-model"
    shutil.copytree(TOKENIZER_DIR, folder)
    assert locate_model(str(folder), "tokenizer").where == "folder"
    with pytest.raises(ModelUnavailableError) as caught:
        locate_model(str(folder), "all")
    assert "config.json" in str(caught.value) and "the weights" in str(caught.value)
    assert_says_how_to_provide(str(caught.value), str(folder))
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        locate_model(str(tmp_path / "nowhere"), "tokenizer")


def test_the_hub_unreachable_is_said_at_once_with_the_ways_to_provide_the_model(
    tmp_path: Path, unreachable_hub: str
) -> None:
    env = hub_env(tmp_path, unreachable_hub, probe_seconds=None)  # PROBE_SECONDS
    result = locate_in_child(env, HUB_MODEL, "tokenizer")
    assert float(str(result["seconds"])) < PREFLIGHT_LIMIT_SECONDS
    message = str(result["error"])
    assert "cannot be reached" in message and unreachable_hub in message
    assert "not in the Hugging Face cache" in message and str(tmp_path / "hf-home") in message
    assert_says_how_to_provide(message, HUB_MODEL)


def test_hf_hub_etag_timeout_sets_how_long_a_silent_hub_is_waited_for(tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        result = locate_in_child(hub_env(tmp_path, endpoint, probe_seconds="1"), HUB_MODEL)
    waited = float(str(result["seconds"]))
    assert 1.0 <= waited < 2.0 < PROBE_SECONDS, waited
    assert "cannot be reached" in str(result["error"])


@pytest.mark.parametrize("value", ["soon", "0", "-1"])
def test_a_bad_hf_hub_etag_timeout_is_refused_by_name(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", value)
    with pytest.raises(ValueError, match=f"HF_HUB_ETAG_TIMEOUT must be .* not '{value}'"):
        probe_seconds()
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", " ")
    assert probe_seconds() == PROBE_SECONDS


def _cache_model(hf_home: Path, repo_id: str, files: Path, *, only: tuple[str, ...] = ()) -> Path:
    """``repo_id`` in the hub cache's layout (refs/main -> snapshots/<commit>/files)."""
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for path in files.iterdir():
        if not only or path.name in only:
            shutil.copy(path, snapshot / path.name)
    return snapshot


def test_a_model_complete_in_the_cache_needs_no_network(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    snapshot = _cache_model(tmp_path / "hf-home", "tiny/qwen", tiny_model_dir)
    env = hub_env(tmp_path, refused_endpoint())
    result = locate_in_child(env, "tiny/qwen", "all")
    assert result["where"] == "cache" and result["path"] == str(snapshot)
    assert result["parameters"] == locate_model(str(tiny_model_dir)).parameters


def test_offline_a_model_only_partly_cached_is_refused(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    tokenizer_files = ("tokenizer_config.json", "tokenizer.json", "vocab.json", "merges.txt")
    _cache_model(tmp_path / "hf-home", "tiny/qwen", tiny_model_dir, only=tokenizer_files)
    env = hub_env(tmp_path, "http://127.0.0.1:9", HF_HUB_OFFLINE="1")
    assert locate_in_child(env, "tiny/qwen", "tokenizer")["where"] == "cache"
    message = str(locate_in_child(env, "tiny/qwen", "all")["error"])
    assert "partly in the Hugging Face cache" in message and "HF_HUB_OFFLINE" in message
    assert_says_how_to_provide(message, "tiny/qwen")


def seven_b_folder(folder: Path) -> Path:
    """A model folder that says it holds Qwen2.5-7B (a safetensors header, sparse data)."""
    shutil.copytree(TOKENIZER_DIR, folder)
    (folder / "config.json").write_text('{"model_type": "qwen2"}', encoding="utf-8")
    header = json.dumps(
        {
            "model.embed_tokens.weight": {
                "dtype": "BF16",
                "shape": [QWEN25_7B_PARAMETERS],
                "data_offsets": [0, 2 * QWEN25_7B_PARAMETERS],
            },
            "__metadata__": {"format": "pt"},
        }
    ).encode()
    with (folder / "model.safetensors").open("wb") as weights:
        weights.write(struct.pack("<Q", len(header)) + header)
        weights.truncate(8 + len(header) + 2 * QWEN25_7B_PARAMETERS)  # no disk used
    return folder


def test_parameters_are_counted_from_safetensors_headers(tmp_path: Path) -> None:
    assert count_parameters(seven_b_folder(tmp_path / "7b")) == QWEN25_7B_PARAMETERS


SEVEN_B = ModelSource(HUB_MODEL, HUB_MODEL, "hub", QWEN25_7B_PARAMETERS)
GTX_1080 = Gpu("0", "NVIDIA GeForce GTX 1080", 8192)
H100 = Gpu("1", "NVIDIA H100 80GB HBM3", 81559)


def test_a_7b_without_a_gpu_is_refused_with_the_ways_out() -> None:
    with pytest.raises(HardwareError) as caught:
        check_training_hardware(SEVEN_B, [], quantized=True)
    message = str(caught.value)
    assert "7.6B parameters" in message and "no CUDA GPU (nvidia-smi lists none)" in message
    assert "TRAIN_RUNNER=ssh" in message  # a GPU host...
    assert f"BASE_MODEL={CPU_TRIAL_MODEL}" in message and "hours" in message  # ...or a CPU trial


def test_a_gpu_too_small_for_the_7b_in_4_bit_is_refused_naming_it() -> None:
    with pytest.raises(HardwareError) as caught:
        check_training_hardware(SEVEN_B, [GTX_1080], quantized=True)
    message = str(caught.value)
    assert "GPU 0: NVIDIA GeForce GTX 1080, 8 GB" in message and "4-bit" in message
    assert "Qwen/Qwen2.5-3B-Instruct" in message
    check_training_hardware(SEVEN_B, [H100], quantized=True)
    with pytest.raises(HardwareError, match="GTX 1080"):
        check_training_hardware(SEVEN_B, [H100, GTX_1080], quantized=True)  # every rank's


def test_small_or_unknown_bases_pass_on_the_cpu() -> None:
    check_training_hardware(ModelSource("small", "small", "hub", 494_032_768), [], quantized=True)
    check_training_hardware(ModelSource("x", "x", "hub", None), [], quantized=True)


@pytest.mark.parametrize(
    ("smi_lines", "detected"),
    [([], "no CUDA GPU"), (["0, GPU-1, NVIDIA GeForce GTX 1080, 8192"], "GTX 1080, 8 GB")],
)
async def test_a_local_run_of_a_7b_is_refused_by_what_the_machine_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smi_lines: list[str], detected: str
) -> None:
    model = seven_b_folder(tmp_path / "7b")
    fake_nvidia_smi(tmp_path / "bin", smi_lines)  # no lines: nvidia-smi without a GPU
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    settings = PipelineSettings(_env_file=None, base_model=str(model))  # type: ignore[call-arg]
    started = time.perf_counter()
    with pytest.raises(HardwareError, match=detected):
        await preflight_run(settings, "local")
    assert time.perf_counter() - started < PREFLIGHT_LIMIT_SECONDS
    # Training elsewhere: this machine only builds the dataset (the tokenizer is here).
    assert (await preflight_run(settings, "ssh")).where == "folder"
