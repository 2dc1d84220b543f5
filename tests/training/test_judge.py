"""Judging a new adapter: both adapters scored on one eval set in one process, then style."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.adapters import make_adapter
from training.dataset import write_jsonl
from training.evaluate import evaluate_adapter
from training.gate import decide
from training.judge import JudgeError, Judgement, judge_in_child
from training.quiz_set import QUIZ_FILE, load_quiz_set
from training.runner import stop_leftover_child

SAMPLES = [
    [
        {"role": "system", "content": "Ты — это я."},
        {"role": "user", "content": f"Как прошли выходные, номер {index}?"},
        {"role": "assistant", "content": "Отлично, ездили за город и гуляли в лесу"},
    ]
    for index in range(3)
]


@pytest.fixture
def eval_file(tmp_path: Path) -> Path:
    path = tmp_path / "eval.jsonl"
    write_jsonl(path, SAMPLES)  # type: ignore[arg-type]
    return path


@pytest.mark.slow
async def test_both_adapters_are_scored_in_one_process_as_each_alone(
    tiny_model_dir: Path, tmp_path: Path, eval_file: Path
) -> None:
    candidate = make_adapter(tiny_model_dir, tmp_path / "new", seed=1, system_prompt="Ты — я.")
    serving = make_adapter(tiny_model_dir, tmp_path / "old", seed=2, system_prompt="Я.")
    log = tmp_path / "judge.log"
    judgement = await judge_in_child(candidate, serving, eval_file, max_length=256, log_path=log)
    alone_new = evaluate_adapter(candidate, eval_file, max_length=256, device="cpu")
    alone_old = evaluate_adapter(serving, eval_file, max_length=256, device="cpu")
    assert judgement.candidate["eval_loss"] == pytest.approx(alone_new["eval_loss"], rel=1e-5)
    assert judgement.serving is not None and judgement.serving_error is None
    assert judgement.serving["eval_loss"] == pytest.approx(alone_old["eval_loss"], rel=1e-5)
    assert judgement.candidate["eval_loss"] != pytest.approx(judgement.serving["eval_loss"])
    assert judgement.style["style_samples"] == 3.0 and judgement.style_error is None
    # One base model load for both adapters and the style checks.
    assert log.read_text("utf-8").count("loading base model") == 1
    # The candidate's replies are kept as the owner's quiz (a random adapter never stops
    # within the limit, so none qualifies: a cut reply would give the clone away).
    assert load_quiz_set(candidate) == []
    assert not (serving / QUIZ_FILE).exists()


@pytest.mark.slow
async def test_a_serving_adapter_that_cannot_be_scored_is_reported_not_fatal(
    tiny_model_dir: Path, tmp_path: Path, eval_file: Path
) -> None:
    candidate = make_adapter(tiny_model_dir, tmp_path / "new", seed=1, system_prompt="Я.")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "clone.json").write_text("{not json", "utf-8")
    judgement = await judge_in_child(
        candidate, broken, eval_file, max_length=256, log_path=tmp_path / "j.log"
    )
    assert judgement.serving is None and "clone.json" in str(judgement.serving_error)
    decision = decide(judgement, serving_exists=True, min_improvement=0.01)
    assert not decision.promote and "could not be scored" in decision.reason
    with pytest.raises(JudgeError, match=r"clone\.json"):
        await judge_in_child(broken, None, eval_file, max_length=256, log_path=tmp_path / "b.log")


def test_the_gate_compares_the_two_figures_of_one_judgement() -> None:
    def judged(candidate: float, serving: float | None) -> Judgement:
        figures = {"eval_loss": candidate, "eval_content_token_accuracy": 0.5}
        return Judgement(figures, {"eval_loss": serving} if serving is not None else None)

    assert decide(judged(3.0, None), serving_exists=False, min_improvement=0.01).promote
    assert decide(judged(2.0, 2.5), serving_exists=True, min_improvement=0.01).promote
    kept = decide(judged(2.495, 2.5), serving_exists=True, min_improvement=0.01)
    assert not kept.promote and "2.495" in kept.reason and "2.500" in kept.reason
    assert not decide(judged(2.6, 2.5), serving_exists=True, min_improvement=0.01).promote
    # Something serves but has no figure from this eval set: not comparable, kept.
    unscored = decide(judged(0.1, None), serving_exists=True, min_improvement=0.01)
    assert not unscored.promote and unscored.serving_loss is None


async def _judge_recorded(candidate: Path, eval_file: Path, pid_path: Path) -> Judgement:
    """The candidate judged alone, its judge recorded in ``pid_path`` (log beside it)."""
    log_path = pid_path.with_name("judge.log")
    return await judge_in_child(
        candidate, None, eval_file, max_length=256, log_path=log_path, pid_path=pid_path
    )


def _alive(pid: int) -> bool:
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())  # empty for a zombie
    except OSError:
        return False


async def test_a_cancelled_judge_has_exited_when_the_cancel_returns(
    tiny_model_dir: Path, tmp_path: Path, eval_file: Path
) -> None:
    candidate = make_adapter(tiny_model_dir, tmp_path / "new", seed=1, system_prompt="Я.")
    pid_path = tmp_path / "judge.pid"
    judging = asyncio.create_task(_judge_recorded(candidate, eval_file, pid_path))
    while not pid_path.exists():
        await asyncio.sleep(0.01)
    pid = int(pid_path.read_text())
    assert _alive(pid)
    judging.cancel()
    with pytest.raises(asyncio.CancelledError):
        await judging
    assert not _alive(pid), "the judging child was stopped, not left running"
    assert not pid_path.exists()


@pytest.mark.slow
async def test_a_judge_left_by_a_killed_bot_is_stopped_before_the_next_one(
    tiny_model_dir: Path, tmp_path: Path, eval_file: Path
) -> None:
    candidate = make_adapter(tiny_model_dir, tmp_path / "new", seed=1, system_prompt="Я.")
    pid_path = tmp_path / "judge.pid"
    # What a killed bot leaves: a judge of this run, in a session of its own, still working.
    stand_in = ["-c", "import time; time.sleep(300)", "-m", "training.judge"]
    leftover = subprocess.Popen([sys.executable, *stand_in], start_new_session=True)
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        pid_path.write_text(str(leftover.pid))
        judgement = await _judge_recorded(candidate, eval_file, pid_path)
        assert leftover.wait(timeout=5) != 0, "the leftover judge was stopped"
        assert judgement.candidate["eval_loss"] > 0
        pid_path.write_text(str(unrelated.pid))  # a pid reused by another program
        assert not stop_leftover_child(pid_path, "training.judge")
        assert unrelated.poll() is None, "a process that is not a judge is left alone"
    finally:
        for process in (leftover, unrelated):
            process.kill()
            process.wait()
