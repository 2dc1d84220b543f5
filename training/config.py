"""Typed settings for dataset building, training and generation.

``DatasetConfig`` lives in ``training.dataset_config`` (it grew its own module) and is
re-exported here, so ``from training.config import DatasetConfig`` keeps working.

Single fields are checked on construction (all problems of one object reported at once);
combinations are checked by ``validate()``, which also collects every problem and raises one
``ValueError``. ``to_dict()``/``from_dict()`` give JSON-safe round trips, so a ``TrainConfig``
can travel to a training process (local or remote) as a plain JSON file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from training.config_checks import raise_if as _raise_if
from training.config_checks import unknown_keys as _unknown_keys
from training.dataset_config import (
    DEFAULT_FILLER_REPLIES,
    DEFAULT_MAX_LENGTH,
    DEFAULT_SYSTEM_PROMPT,
    DatasetConfig,
)

__all__ = [
    "DEFAULT_BASE_MODEL",
    "DEFAULT_FILLER_REPLIES",
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_SYSTEM_PROMPT",
    "DatasetConfig",
    "GenerationSettings",
    "TrainConfig",
]

DEFAULT_BASE_MODEL = "Qwen/Qwen2.5-7B-Instruct"
Quantization = Literal["auto", "4bit", "none"]
QUANTIZATION_CHOICES: tuple[Quantization, ...] = ("auto", "4bit", "none")


@dataclass(frozen=True, kw_only=True)
class GenerationSettings:
    """How the clone samples its replies (Qwen2.5-Instruct's own defaults)."""

    temperature: float = 0.7
    """Softmax temperature; must be > 0 when ``do_sample`` is on."""
    top_p: float = 0.8
    """Nucleus sampling mass, in (0, 1]."""
    top_k: int = 20
    """Keep only the k most likely tokens; 0 turns the filter off."""
    repetition_penalty: float = 1.05
    """Penalty (> 0) on tokens already present; 1.0 means none."""
    max_new_tokens: int = 256
    """Upper bound on the length of one reply, in tokens."""
    do_sample: bool = True
    """Sample (True) or decode greedily (False)."""

    def __post_init__(self) -> None:
        _raise_if(self._field_problems(), "GenerationSettings")

    def _field_problems(self) -> list[str]:
        problems = []
        if self.temperature < 0:
            problems.append(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            problems.append(f"top_k must be >= 0, got {self.top_k}")
        if self.repetition_penalty <= 0:
            problems.append(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        return problems

    def problems(self) -> list[str]:
        """Every problem of this object, combinations included (empty when valid)."""
        problems = self._field_problems()
        if self.do_sample and self.temperature == 0:
            problems.append("temperature is 0 while do_sample is on: set do_sample=False instead")
        return problems

    def validate(self) -> None:
        """Raise one ``ValueError`` listing every problem."""
        _raise_if(self.problems(), "GenerationSettings")

    def to_generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``model.generate`` (greedy decoding drops the sampling knobs)."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "repetition_penalty": self.repetition_penalty,
            "do_sample": self.do_sample,
        }
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationSettings:
        """Inverse of ``to_dict``; unknown keys are an error."""
        _unknown_keys(cls, data)
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One QLoRA training run: data, LoRA shape, optimisation, and what serving will need."""

    base_model: str = field(default=DEFAULT_BASE_MODEL, metadata={"setting": "base_model"})
    """Hub id or local directory of the instruct model the adapter is trained on."""
    train_file: Path
    """JSONL of ``{"messages": [...]}`` training samples (``training.dataset.write_jsonl``)."""
    eval_file: Path
    """JSONL of held-out samples; at least one is required."""
    output_dir: Path
    """Run directory: checkpoints, ``adapter/`` and ``result.json`` go here."""
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    """The rules the samples were built with; its system prompt must start every sample.
    Saved in clone.json, so serving shapes turns the same way."""
    chat_template: str | None = None
    """Jinja chat template; None uses the tokenizer's own. The text used is saved in clone.json."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA input, in [0, 1)."""
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    """Names of the linear layers that get adapters."""
    learning_rate: float = 1e-4
    """Peak learning rate."""
    lr_scheduler_type: str = "cosine"
    """A transformers scheduler name (cosine, linear, constant, ...)."""
    warmup_ratio: float = 0.03
    """Share of the steps spent warming up, in [0, 1)."""
    weight_decay: float = 0.0
    """AdamW weight decay on the LoRA weights (0: none, the recipe's choice)."""
    num_train_epochs: float = field(default=5.0, metadata={"setting": "train_epochs"})
    """Passes over the training set (early stopping usually ends sooner)."""
    per_device_train_batch_size: int = field(default=4, metadata={"setting": "train_batch_size"})
    """Training samples per device per step."""
    per_device_eval_batch_size: int = field(
        default=4, metadata={"setting": "train_eval_batch_size"}
    )
    """Eval samples per device per step."""
    gradient_accumulation_steps: int = field(default=4, metadata={"setting": "train_grad_accum"})
    """Micro-batches per optimiser step."""
    eval_steps: int = 50
    """Evaluate (and checkpoint) every this many optimiser steps."""
    logging_steps: int = 10
    """Report the training loss every this many optimiser steps."""
    early_stopping_patience: int = 3
    """Stop after this many evaluations without an eval_loss improvement."""
    early_stopping_threshold: float = 0.01
    """Smallest eval_loss decrease that counts as an improvement."""
    max_steps: int = -1
    """Stop after this many optimiser steps; -1 means run ``num_train_epochs``."""
    quantization: Quantization = "auto"
    """auto: 4-bit NF4 when CUDA is available, none otherwise; 4bit requires CUDA."""
    seed: int = 42
    """Seed for LoRA initialisation and data order."""
    padding_free: bool = True
    """Concatenate each micro-batch into one row with no padding (TRL ``padding_free``).

    Position ids restart at every sample, so samples never attend to each other: flash-attention
    (when ``flash_attn`` is installed) reads the boundaries as ``cu_seq_lens``, sdpa/eager get a
    block-diagonal causal mask from transformers. The loss mask is the padded path's, token by
    token. False pads every micro-batch to its longest sample (the plain baseline)."""
    packing: bool = False
    """Best-fit-decreasing packing of whole samples into rows of ``max_length`` tokens (TRL
    ``packing_strategy="bfd"``, no sample is cut). Needs ``padding_free``. Off by default: it
    makes fewer, fuller steps per epoch, which changes what ``eval_steps`` and the learning-rate
    schedule mean; padding-free alone already removes the padding."""
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    """Sampling settings saved in clone.json for serving."""
    preference_stage: bool = field(default=True, metadata={"setting": "preference_stage"})
    """After the supervised stage, learn from the owner's feedback on the same adapter: /fix
    corrections as DPO pairs, replies marked good or bad as KTO examples. Runs only with at
    least ``preference_min_pairs`` signals; dropped if it worsens eval_loss (see
    ``preference_tolerance``)."""
    preference_min_pairs: int = field(default=20, metadata={"setting": "preference_min_pairs"})
    """Fewest owner signals (corrections and labelled replies) the preference stage needs."""
    preference_beta: float = field(default=0.1, metadata={"setting": "preference_beta"})
    """DPO/KTO beta of the preference stage: higher keeps it closer to the supervised adapter."""
    preference_learning_rate: float = field(
        default=2e-5, metadata={"setting": "preference_learning_rate"}
    )
    """Peak learning rate of the preference stage."""
    preference_epochs: float = field(default=2.0, metadata={"setting": "preference_epochs"})
    """Passes over the owner's signals in the preference stage."""
    preference_file: Path | None = field(default=None, metadata={"knob": False})
    """JSONL of the owner's signals (``training.preference_data``); None: there are none."""
    preference_tolerance: float = field(default=0.0, metadata={"knob": False})
    """eval_loss the preference stage may add before its result is dropped and the supervised
    adapter kept (the pipeline passes PROMOTE_MIN_IMPROVEMENT)."""
    dataset_fingerprint: str = field(default="", metadata={"knob": False})
    """``DatasetBuild.fingerprint`` of the data, recorded in clone.json."""
    dataset_size: int = field(default=0, metadata={"knob": False})
    """Number of samples (train + eval), recorded in clone.json."""

    def __post_init__(self) -> None:
        _raise_if(self._field_problems(), "TrainConfig")

    @property
    def max_length(self) -> int:
        """Longest sample in tokens: the dataset's ``max_seq_tokens``, which its windows fit."""
        return self.dataset.max_seq_tokens

    def _field_problems(self) -> list[str]:
        problems = []
        if not self.base_model.strip():
            problems.append("base_model must not be empty")
        if self.chat_template is not None and not self.chat_template.strip():
            problems.append("chat_template must be None (tokenizer's own) or a template")
        positive_ints = (
            "lora_r",
            "lora_alpha",
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
            "eval_steps",
            "logging_steps",
            "early_stopping_patience",
        )
        for name in positive_ints:
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.lora_dropout < 1:
            problems.append(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not self.target_modules:
            problems.append("target_modules must name at least one module")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.num_train_epochs <= 0:
            problems.append(f"num_train_epochs must be > 0, got {self.num_train_epochs}")
        if self.early_stopping_threshold < 0:
            problems.append(
                f"early_stopping_threshold must be >= 0, got {self.early_stopping_threshold}"
            )
        if self.max_steps == 0 or self.max_steps < -1:
            problems.append(f"max_steps must be -1 (use epochs) or >= 1, got {self.max_steps}")
        if self.quantization not in QUANTIZATION_CHOICES:
            problems.append(
                f"quantization must be one of {QUANTIZATION_CHOICES}, got {self.quantization!r}"
            )
        if self.dataset_size < 0:
            problems.append(f"dataset_size must be >= 0, got {self.dataset_size}")
        if self.preference_min_pairs < 1:
            problems.append(f"preference_min_pairs must be >= 1, got {self.preference_min_pairs}")
        for name in ("preference_beta", "preference_learning_rate", "preference_epochs"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)}")
        if self.preference_tolerance < 0:
            problems.append(f"preference_tolerance must be >= 0, got {self.preference_tolerance}")
        for name in ("padding_free", "packing", "preference_stage"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false, got {getattr(self, name)!r}")
        return problems

    def problems(self) -> list[str]:
        """Every problem of this object, combinations included (empty when valid)."""
        problems = self._field_problems()
        problems += [f"generation: {p}" for p in self.generation.problems()]
        problems += [f"dataset: {p}" for p in self.dataset.problems()]
        if Path(self.train_file) == Path(self.eval_file):
            problems.append("eval_file must differ from train_file (held-out data is required)")
        if self.max_steps > 0 and self.eval_steps > self.max_steps:
            problems.append(
                f"eval_steps ({self.eval_steps}) exceeds max_steps ({self.max_steps}): no "
                "evaluation would run; lower eval_steps"
            )
        if self.packing and not self.padding_free:
            problems.append(
                "packing needs padding_free (packed rows are split back into samples by position "
                "ids, not by an attention mask): set padding_free=True or packing=False"
            )
        if self.dataset_size > 0 and not self.dataset_fingerprint:
            problems.append("dataset_size is set without dataset_fingerprint; pass both")
        return problems

    def validate(self) -> None:
        """Raise one ``ValueError`` listing every problem."""
        _raise_if(self.problems(), "TrainConfig")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (paths as strings, tuples as lists, generation nested)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("train_file", "eval_file", "output_dir"):
            data[name] = str(data[name])
        if self.preference_file is not None:
            data["preference_file"] = str(self.preference_file)
        data["target_modules"] = list(self.target_modules)
        data["generation"] = self.generation.to_dict()
        data["dataset"] = self.dataset.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of ``to_dict``; unknown keys are an error."""
        _unknown_keys(cls, data)
        values = dict(data)
        for name in ("train_file", "eval_file", "output_dir", "preference_file"):
            if values.get(name) is not None:
                values[name] = Path(values[name])
        if "target_modules" in values:
            values["target_modules"] = tuple(values["target_modules"])
        if isinstance(values.get("generation"), dict):
            values["generation"] = GenerationSettings.from_dict(values["generation"])
        if isinstance(values.get("dataset"), dict):
            values["dataset"] = DatasetConfig.from_dict(values["dataset"])
        return cls(**values)
