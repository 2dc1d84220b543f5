"""The training part of /stats: the last run and the serving adapter, with their style figures.

Style figures (``style_*`` keys of a run's or an adapter's metrics, see
``training.style_checks``) get one compact line per run or adapter, and a short legend
once at the end, so the message stays a few plain-text lines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from storage.models import AdapterRecord, TrainingRun
from storage.quizzes import QuizScore

Z_95 = 1.959964
"""The normal quantile of a two-sided 95% interval."""


def _metric(metrics: dict[str, float], name: str) -> str:
    value = metrics.get(name)
    return "n/a" if value is None else f"{value:.3f}"


def describe_metrics(metrics: dict[str, float]) -> str:
    """eval_loss and mean token accuracy in a few words (content accuracy once gated)."""
    text = (
        f"eval_loss {_metric(metrics, 'eval_loss')}, "
        f"mean token accuracy {_metric(metrics, 'eval_mean_token_accuracy')}"
    )
    if "gate_content_token_accuracy" in metrics:
        text += f", {_metric(metrics, 'gate_content_token_accuracy')} on content tokens"
    return text


STYLE_LEGEND = (
    "Style = clone vs your real replies in held-out chats:",
    "  length gap: how far reply lengths are from yours (0 same, 1 off by a whole reply)",
    "  emoji gap: difference in the share of replies with an emoji",
    '  assistant-like: replies such as "As an AI…" or "Конечно! Вот…" (want 0%)',
    "  distinct-2: share of unique word pairs; lower than yours = repetitive",
    "  memory use: replies sharing a word with what memory showed (yours for reference)",
)


def format_style(metrics: Mapping[str, float]) -> str | None:
    """One line of style figures, or None when the metrics hold none."""
    parts = []
    if "style_length_distance" in metrics:
        parts.append(f"length gap {metrics['style_length_distance']:.2f}")
    if "style_emoji_rate_distance" in metrics:
        parts.append(f"emoji gap {metrics['style_emoji_rate_distance']:.0%}")
    if "style_assistant_share" in metrics:
        parts.append(f"assistant-like {metrics['style_assistant_share']:.0%}")
    if "style_distinct_2" in metrics:
        distinct = f"distinct-2 {metrics['style_distinct_2']:.2f}"
        if "style_distinct_2_owner" in metrics:
            distinct += f" (yours {metrics['style_distinct_2_owner']:.2f})"
        parts.append(distinct)
    if "style_memory_overlap" in metrics:
        use = f"memory use {metrics['style_memory_overlap']:.0%}"
        if "style_memory_overlap_owner" in metrics:
            use += f" (yours {metrics['style_memory_overlap_owner']:.0%})"
        parts.append(use)
    if not parts:
        return None
    if "style_samples" in metrics:
        parts.append(f"{int(metrics['style_samples'])} replies")
    return "style: " + ", ".join(parts)


def _metric_lines(metrics: Mapping[str, float]) -> list[str]:
    if not metrics:
        return []
    lines = [f"  {describe_metrics(dict(metrics))}"]
    style = format_style(metrics)
    if style is not None:
        lines.append(f"  {style}")
    return lines


def run_lines(run: TrainingRun | None) -> list[str]:
    """The last run: number, status, time, eval_loss and style figures, error if any."""
    if run is None:
        return ["Last run: none yet — /retrain to start one."]
    when = (run.finished_at or run.started_at or run.created_at).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"Last run: #{run.run_id} {run.status} ({when})", *_metric_lines(run.metrics)]
    if run.error:
        lines.append(f"  error: {run.error[:300]}")
    return lines


def adapter_lines(adapter: AdapterRecord | None, last_run: TrainingRun | None) -> list[str]:
    """The serving adapter; its figures only when the last run did not already show them."""
    if adapter is None:
        return ["Serving adapter: none"]
    if adapter.run_id is None:
        return [f"Serving adapter: #{adapter.adapter_id}", *_metric_lines(adapter.metrics)]
    head = f"Serving adapter: #{adapter.adapter_id} (run #{adapter.run_id})"
    if last_run is not None and last_run.run_id == adapter.run_id and last_run.metrics:
        return [head]
    return [head, *_metric_lines(adapter.metrics)]


def precision_line(recorded: str, served: str | None, *, model_server: bool) -> str:
    """The serving adapter's base precision as trained and judged (its clone.json), and as the
    engine serves it (``served``; None: not loaded now, or ``model_server`` chose it)."""
    trained = f"trained and judged on {recorded}" if recorded else "not recorded in its clone.json"
    if served is not None:
        if served == recorded:
            return f"Precision: {recorded} (trained, judged and served)"
        return (
            f"Precision: {trained}, served on {served} here (ENGINE_QUANTIZATION, or no CUDA "
            "GPU): replies may differ from what the gate judged"
        )
    if model_server:
        return (
            f"Precision: {trained}; the model server must load the base the same way (vLLM: "
            "--quantization bitsandbytes for nf4, as docker-compose.yml starts it)"
        )
    return f"Precision: {trained}"


def style_legend(*metrics: Mapping[str, float]) -> list[str]:
    """The legend, when any of the shown metrics has style figures."""
    if any(format_style(m) is not None for m in metrics):
        return list(STYLE_LEGEND)
    return []


def wilson_interval(hits: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (sound for small counts and 0 or 100%)."""
    if trials <= 0:
        raise ValueError("an interval needs at least one trial")
    share = hits / trials
    denominator = 1 + z * z / trials
    centre = (share + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))
    half /= denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def quiz_figure(score: QuizScore) -> str:
    """How often the owner did not find their own reply: count, share and 95% interval."""
    low, high = wilson_interval(score.missed, score.answered)
    share = score.missed / score.answered
    return (
        f"missed yours {score.missed}/{score.answered} ({share:.0%}, 95% CI {low:.0%}–{high:.0%})"
    )


def quiz_lines(scores: Mapping[int, QuizScore], serving_id: int | None) -> list[str]:
    """The /stats lines of the blind test, one per quizzed adapter, newest first."""
    if not scores:
        return []
    lines = ["Blind test (/quiz), picked the clone's reply or could not tell:"]
    for adapter_id in sorted(scores, reverse=True):
        state = " (serving)" if adapter_id == serving_id else ""
        lines.append(f"  adapter #{adapter_id}{state}: {quiz_figure(scores[adapter_id])}")
    return lines
