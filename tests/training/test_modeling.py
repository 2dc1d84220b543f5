"""Loading base models: flash-attention only when it really loads, and the judge holding an
adapter to the precision it records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.adapters import make_adapter
from tests.tiny_model import torch_env
from training.dataset import write_jsonl
from training.judge import JudgeError, judge_in_child

ROOT = Path(__file__).resolve().parents[2]
# The import error of a flash-attn wheel built for another torch: its extension's symbols.
BROKEN = (
    "raise ImportError('flash_attn_2_cuda.cpython-311-x86_64-linux-gnu.so: undefined symbol: "
    "_ZN3c104cuda9SetDeviceEi')\n"
)
WORKING = "def flash_attn_varlen_func(*args, **kwargs):\n    return None\n"
PROBE = """
import json, logging
from training.modeling import attention_implementation, flash_attn_load_error
logging.basicConfig(level=logging.INFO)
print(json.dumps({"error": flash_attn_load_error(), "cpu": attention_implementation(False),
                  "cuda": attention_implementation(True)}))
"""


def _probe(
    tmp_path: Path, package: str | None, *, metadata: bool = True
) -> tuple[dict[str, str | None], str]:
    """The checks in a fresh process that finds ``package`` as flash_attn (None: no such),
    installed as pip installs it (``metadata``) or as a bare folder."""
    site = tmp_path / "site"
    if package is not None:
        (site / "flash_attn").mkdir(parents=True)
        (site / "flash_attn" / "__init__.py").write_text(package, "utf-8")
    if package is not None and metadata:
        info = site / "flash_attn-2.7.4.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flash-attn\nVersion: 2.7.4\n")
        (info / "top_level.txt").write_text("flash_attn\n", "utf-8")
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": f"{site}:{ROOT}",
            "HF_HUB_OFFLINE": "1",
            **torch_env(),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_a_flash_attn_that_cannot_load_is_found_out_before_the_model_loads(
    tmp_path: Path,
) -> None:
    result, log = _probe(tmp_path, BROKEN)
    assert result["error"] is not None and "undefined symbol" in result["error"]
    assert result["cpu"] == "sdpa"
    # This machine has no CUDA: transformers' own check already says no, with a log line.
    assert result["cuda"] == "sdpa" and "attention: sdpa" in log
    # Without metadata transformers' check imports the package itself: its error is ours.
    result, log = _probe(tmp_path / "bare", BROKEN, metadata=False)
    assert result["cuda"] == "sdpa" and "does not load (ImportError" in log


def test_a_flash_attn_that_loads_passes_the_load_check(tmp_path: Path) -> None:
    assert _probe(tmp_path, WORKING)[0]["error"] is None
    assert "ModuleNotFoundError" in str(_probe(tmp_path / "none", None)[0]["error"])


@pytest.mark.slow
async def test_the_judge_holds_an_adapter_to_its_recorded_precision(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """An adapter trained on NF4 is judged on NF4 or not at all (NF4 needs CUDA, not here)."""
    adapter = make_adapter(tiny_model_dir, tmp_path / "nf4", seed=1, system_prompt="Я.")
    spec = json.loads((adapter / "clone.json").read_text("utf-8"))
    (adapter / "clone.json").write_text(json.dumps({**spec, "precision": "nf4"}), "utf-8")
    eval_file = tmp_path / "eval.jsonl"
    sample = [
        {"role": "system", "content": "Я."},
        {"role": "user", "content": "как дела?"},
        {"role": "assistant", "content": "норм"},
    ]
    write_jsonl(eval_file, [sample])  # type: ignore[list-item]
    with pytest.raises(JudgeError, match=r"4-bit \(nf4\) weights need a CUDA GPU"):
        await judge_in_child(adapter, None, eval_file, max_length=64, log_path=tmp_path / "j.log")
