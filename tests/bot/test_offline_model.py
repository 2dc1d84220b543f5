"""BASE_MODEL missing on a host that cannot reach the hub (a bogus HF_ENDPOINT on 127.0.0.1):
`tgclone dataset build` goes on with estimated counts and says so in one line; a training
run, the judge and the in-process engine stop at once with one message naming the model and
the two ways to provide it. Before the preflight, the tokenizer alone took 61 s of hub retries
here to fail against a refused endpoint, and 189 s against a silent one."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.adapters import make_adapter
from tests.export_factory import write_full_export
from tests.hub import HUB_MODEL, ROOT, assert_says_how_to_provide, hub_env
from training.dataset import write_jsonl

# Python's start and imports included; the hub's retries alone took 61 s before.
COMMAND_LIMIT_SECONDS = 30.0


def run(
    args: list[str], env: dict[str, str], cwd: Path
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    return done, time.perf_counter() - started


def hub_adapter(tiny_model_dir: Path, folder: Path) -> Path:
    """An adapter whose clone.json names a hub model that is not here."""
    adapter = make_adapter(tiny_model_dir, folder, seed=1, system_prompt="Я.")
    spec = json.loads((adapter / "clone.json").read_text("utf-8"))
    spec["base_model"] = HUB_MODEL
    (adapter / "clone.json").write_text(json.dumps(spec), "utf-8")
    return adapter


def test_dataset_build_goes_on_with_estimates_and_says_so_once(
    tmp_path: Path, unreachable_hub: str
) -> None:
    env = hub_env(tmp_path, unreachable_hub)
    data = tmp_path / "data"
    export = write_full_export(tmp_path / "result.json", conversations=6)
    cli = [sys.executable, "-m", "bot.cli", "--data-dir", str(data)]
    imported, _ = run([*cli, "import", str(export)], env, tmp_path)
    assert imported.returncode == 0, imported.stderr
    built, seconds = run([*cli, "dataset", "build", "--out", str(tmp_path / "ds")], env, tmp_path)
    assert built.returncode == 0, built.stderr
    assert seconds < COMMAND_LIMIT_SECONDS
    notes = [line for line in built.stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "token counts are estimates" in notes[0]
    assert_says_how_to_provide(notes[0].split("estimates: ", 1)[1], HUB_MODEL)
    assert (tmp_path / "ds" / "train.jsonl").read_text("utf-8").strip()


def test_a_training_run_does_not_start(tmp_path: Path, unreachable_hub: str) -> None:
    env = hub_env(tmp_path, unreachable_hub, BASE_MODEL=HUB_MODEL)
    cli = [sys.executable, "-m", "bot.cli", "--data-dir", str(tmp_path / "data")]
    export = write_full_export(tmp_path / "result.json", conversations=6)
    assert run([*cli, "import", str(export)], env, tmp_path)[0].returncode == 0
    done, seconds = run([*cli, "train"], env, tmp_path)
    assert done.returncode == 1 and seconds < COMMAND_LIMIT_SECONDS
    said = [line for line in done.stdout.splitlines() if "did not start" in line]
    assert len(said) == 1, done.stdout
    assert_says_how_to_provide(said[0].split("did not start: ", 1)[1], HUB_MODEL)
    assert not (tmp_path / "data" / "runs").exists()  # no dataset, no process
    assert "Traceback" not in done.stderr


def test_the_judge_stops_with_the_message(
    tmp_path: Path, tiny_model_dir: Path, unreachable_hub: str
) -> None:
    adapter = hub_adapter(tiny_model_dir, tmp_path / "adapter")
    eval_file = tmp_path / "eval.jsonl"
    write_jsonl(eval_file, [[{"role": "system", "content": "Я."}]])  # type: ignore[list-item]
    judge = [sys.executable, "-m", "training.judge", "--candidate", str(adapter)]
    done, seconds = run(
        [*judge, "--eval-file", str(eval_file)], hub_env(tmp_path, unreachable_hub), ROOT
    )
    assert done.returncode == 1 and seconds < COMMAND_LIMIT_SECONDS
    assert_says_how_to_provide(json.loads(done.stdout.strip())["error"], HUB_MODEL)


ENGINE = """
import asyncio, sys, time
from pathlib import Path
from bot.engine.local import CloneEngine

async def main() -> None:
    engine = CloneEngine(device="cpu")
    started = time.perf_counter()
    try:
        await engine.load_adapter(Path(sys.argv[1]))
        print("loaded")
    except Exception as exc:
        print(f"{time.perf_counter() - started:.2f} {type(exc).__name__}: {exc}")
    finally:
        await engine.close()

asyncio.run(main())
"""


def test_the_in_process_engine_refuses_the_adapter_with_the_message(
    tmp_path: Path, tiny_model_dir: Path, unreachable_hub: str
) -> None:
    adapter = hub_adapter(tiny_model_dir, tmp_path / "adapter")
    done, _ = run(
        [sys.executable, "-c", ENGINE, str(adapter)], hub_env(tmp_path, unreachable_hub), ROOT
    )
    assert done.returncode == 0, done.stderr
    seconds, kind, message = done.stdout.strip().split(" ", 2)
    assert kind == "ModelUnavailableError:" and float(seconds) < 5.0
    assert_says_how_to_provide(message, HUB_MODEL)
