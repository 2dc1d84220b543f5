"""The preference stage: after the supervised stage, the same adapter learns from the owner's
feedback (``training.preference_data``) through TRL.

* ``DPOTrainer`` on the /fix pairs (the owner's text chosen, the clone's rejected): the pair
  carries the contrast on one prompt, which a paired loss uses and an unpaired one throws away.
* ``KTOTrainer`` on the replies marked good or bad that were not corrected: they have no
  counterpart, and KTO is the TRL trainer for unpaired desirable/undesirable examples.

Each sub-stage trains the adapter as it finds it, with that adapter as its reference (TRL copies
a PEFT model's adapter as ``ref``; the copy is deleted afterwards, so the saved adapter is the
trained one only). Prompts are rendered by ``training.chat_format.render`` (the run's chat
template and system prompt, as serving renders them) and the completion is the reply and its
``<|im_end|>``: the loss covers the assistant turn only.

The stage is judged on the supervised eval set with the supervised trainer's own ``evaluate``
(same samples, same collator, same process): when its eval_loss is worse than the supervised
one by more than ``preference_tolerance``, the supervised weights are put back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from training.chat_format import END_OF_TURN, ChatMessage, render
from training.config import TrainConfig
from training.preference_data import PreferenceData, read_preference_data

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase
    from trl import SFTTrainer

logger = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]
Status = Literal["off", "skipped", "kept", "dropped"]
REFERENCE_ADAPTER = "ref"
"""The name TRL gives its copy of the adapter it starts from."""
EVAL_PREFIX = "preference_eval"


@dataclass(frozen=True)
class PreferenceOutcome:
    """What the preference stage did, for result.json, the run's metrics and the owner."""

    status: Status
    note: str
    """One line for the owner's report."""
    pairs: int = 0
    unpaired: int = 0
    supervised_eval: dict[str, float] = field(default_factory=dict)
    """The supervised adapter's eval figures (``eval_loss``, ...)."""
    after_eval: dict[str, float] = field(default_factory=dict)
    """The same figures after the stage (kept or not)."""
    train: dict[str, float] = field(default_factory=dict)
    """Each sub-stage's training figures (``dpo_train_loss``, ``kto_train_loss``, ...)."""

    def metrics(self) -> dict[str, float]:
        """The figures the run and the adapter record (``preference_*``)."""
        figures = {
            "preference_pairs": float(self.pairs),
            "preference_unpaired": float(self.unpaired),
            "preference_kept": float(self.status == "kept"),
        }
        if "eval_loss" in self.after_eval:
            figures["preference_eval_loss"] = self.after_eval["eval_loss"]
            figures["supervised_eval_loss"] = self.supervised_eval["eval_loss"]
        figures.update({f"preference_{k}": v for k, v in self.train.items()})
        return figures

    def to_dict(self) -> dict[str, Any]:
        """result.json's ``preference`` entry."""
        return {
            "status": self.status,
            "note": self.note,
            "pairs": self.pairs,
            "unpaired": self.unpaired,
            "supervised_eval": self.supervised_eval,
            "after_eval": self.after_eval,
            "train": self.train,
        }


def preference_stage(
    config: TrainConfig,
    tokenizer: PreTrainedTokenizerBase,
    trainer: SFTTrainer,
    supervised_eval: dict[str, float],
    emit: Emit,
) -> PreferenceOutcome:
    """Run the stage on ``trainer``'s adapter if it is on and has enough signals.

    ``supervised_eval``: the supervised adapter's ``trainer.evaluate()``. Returns what happened;
    afterwards ``trainer.model`` holds the adapter to save (the stage's, or the supervised one
    put back).
    """
    if not config.preference_stage:
        return PreferenceOutcome("off", "Preference stage: off (PREFERENCE_STAGE=false).")
    data = _read(config)
    needed = config.preference_min_pairs
    if data.signals < needed:
        note = (
            f"Preference stage skipped: {data.signals} of the {needed} signals it needs "
            "(/fix corrections and replies you rated); the supervised adapter is used."
        )
        return PreferenceOutcome("skipped", note, len(data.pairs), len(data.unpaired))
    model: Any = trainer.model
    snapshot = _adapter_weights(model)
    emit({"event": "preference", "pairs": len(data.pairs), "unpaired": len(data.unpaired)})
    train: dict[str, float] = {}
    rated = len(data.unpaired) if len(data.unpaired) >= 2 else 0  # KTO's KL needs two a batch
    # Each TRL trainer wraps the model's forward in its own fused LM head, computing only the
    # outputs it needs: the supervised trainer evaluates again with its own.
    base = model.get_base_model()
    supervised_forward = base.forward
    try:
        if data.pairs:
            train.update(_train(dpo_trainer(config, tokenizer, model, data), model, "dpo"))
        if rated:
            train.update(_train(kto_trainer(config, tokenizer, model, data), model, "kto"))
    finally:
        base.forward = supervised_forward
    after = _evaluate(trainer)
    before = supervised_eval["eval_loss"]
    outcome = PreferenceOutcome(
        "kept", "", len(data.pairs), len(data.unpaired), dict(supervised_eval), after, train
    )
    emit({"event": "preference_end", "eval_loss": after["eval_loss"], "supervised": before})
    if after["eval_loss"] - before > config.preference_tolerance:
        _restore(model, snapshot)
        note = (
            f"Preference stage dropped: eval_loss {after['eval_loss']:.3f} against "
            f"{before:.3f} without it (worse by more than {config.preference_tolerance:g}); "
            "the supervised adapter is kept."
        )
        return replace(outcome, status="dropped", note=note)
    note = (
        f"Preference stage: learned from {len(data.pairs)} corrections and "
        f"{rated} rated replies; eval_loss {before:.3f} → {after['eval_loss']:.3f}."
    )
    return replace(outcome, note=note)


def final_metrics(metrics: dict[str, float], outcome: PreferenceOutcome) -> dict[str, float]:
    """The run's metrics with the stage's figures; a kept stage's eval figures replace the
    supervised ones (they describe the adapter that is saved)."""
    final = {**metrics, **outcome.metrics()}
    if outcome.status == "kept":
        final.update(outcome.after_eval)
    return final


def prompt_text(
    tokenizer: PreTrainedTokenizerBase, config: TrainConfig, prompt: Sequence[ChatMessage]
) -> str:
    """The prompt as serving renders it: the template, the system message, the turns and the
    opening of the clone's turn."""
    template = config.chat_template
    return render(tokenizer, prompt, chat_template=template, add_generation_prompt=True)


def _read(config: TrainConfig) -> PreferenceData:
    if config.preference_file is None or not config.preference_file.exists():
        return PreferenceData()
    return read_preference_data(config.preference_file)


def _adapter_weights(model: Any) -> dict[str, Any]:
    """A copy of the trained adapter's weights (small: LoRA matrices only)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}


def _restore(model: Any, weights: dict[str, Any]) -> None:
    from peft import set_peft_model_state_dict

    set_peft_model_state_dict(model, weights)


def _evaluate(trainer: SFTTrainer) -> dict[str, float]:
    """The supervised trainer's evaluation of the adapter now, keyed as ``evaluate`` keys it."""
    # Its own prefix: the run's eval curve (``eval`` events) keeps the supervised evaluations.
    metrics = trainer.evaluate(metric_key_prefix=EVAL_PREFIX)
    return {
        "eval_" + k.removeprefix(EVAL_PREFIX + "_"): float(v)
        for k, v in metrics.items()
        if k.startswith(EVAL_PREFIX + "_") and isinstance(v, int | float)
    }


def _common_args(config: TrainConfig, name: str) -> dict[str, Any]:
    """Arguments every sub-stage shares (the supervised recipe's device settings)."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "output_dir": str(config.output_dir / "preference" / name),
        "learning_rate": config.preference_learning_rate,
        "num_train_epochs": config.preference_epochs,
        "lr_scheduler_type": config.lr_scheduler_type,
        "gradient_accumulation_steps": 1,  # the owner's signals are few: every batch a step
        "beta": config.preference_beta,
        "max_length": config.max_length,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
        "seed": config.seed,
        "use_cpu": not cuda,
        "bf16": cuda and torch.cuda.is_bf16_supported(),
        "activation_checkpointing": cuda,
        "activation_checkpointing_kwargs": {"use_reentrant": False} if cuda else None,
    }


def dpo_trainer(
    config: TrainConfig, tokenizer: PreTrainedTokenizerBase, model: Any, data: PreferenceData
) -> Any:
    """TRL's DPOTrainer on the pairs, for ``model``'s adapter."""
    from trl import DPOConfig, DPOTrainer

    rows: dict[str, list[Any]] = {
        "prompt": [prompt_text(tokenizer, config, pair["prompt"]) for pair in data.pairs],
        "chosen": [pair["chosen"] + END_OF_TURN for pair in data.pairs],
        "rejected": [pair["rejected"] + END_OF_TURN for pair in data.pairs],
    }
    batch = config.per_device_train_batch_size
    args = DPOConfig(per_device_train_batch_size=batch, **_common_args(config, "dpo"))
    return _trainer(DPOTrainer, args, model, tokenizer, rows)


def kto_trainer(
    config: TrainConfig, tokenizer: PreTrainedTokenizerBase, model: Any, data: PreferenceData
) -> Any:
    """TRL's KTOTrainer on the rated replies, for ``model``'s adapter."""
    from trl import KTOConfig, KTOTrainer

    rows: dict[str, list[Any]] = {
        "prompt": [prompt_text(tokenizer, config, item["prompt"]) for item in data.unpaired],
        "completion": [item["completion"] + END_OF_TURN for item in data.unpaired],
        "label": [item["label"] for item in data.unpaired],
    }
    batch = max(2, config.per_device_train_batch_size)  # KTO's KL estimate needs two
    args = KTOConfig(per_device_train_batch_size=batch, **_common_args(config, "kto"))
    return _trainer(KTOTrainer, args, model, tokenizer, rows)


def _trainer(
    trainer_class: Any, args: Any, model: Any, tokenizer: Any, rows: dict[str, list[Any]]
) -> Any:
    from datasets import Dataset

    dataset = Dataset.from_dict(rows)
    return trainer_class(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)


def _train(trainer: Any, model: Any, name: str) -> dict[str, float]:
    """Train, then delete TRL's reference copy of the adapter (the saved adapter is ours)."""
    output = trainer.train()
    if REFERENCE_ADAPTER in model.peft_config:
        model.delete_adapter(REFERENCE_ADAPTER)
    model.set_adapter("default")
    figures = {f"{name}_{k}": float(v) for k, v in output.metrics.items() if k == "train_loss"}
    figures[f"{name}_steps"] = float(trainer.state.global_step)
    logger.info("%s sub-stage: %d steps", name, trainer.state.global_step)
    return figures
