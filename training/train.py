"""QLoRA training recipe: config -> tokenizer/model -> datasets -> trainer -> train ->
evaluate -> preference stage (``training.preference``) -> adapter + clone.json -> result.json.

Run as ``python -m training.train --config run_config.json [--learning-rate 2e-4 ...]``.
stdout carries one JSON object per line (progress events, see ``emit``); logs go to stderr.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from storage.memory import INDEX_VERSION
from training.chat_format import PAD_TOKEN, CloneSpec, save_clone_spec, tokenize_for_training
from training.child_exit import exit_child
from training.config import TrainConfig
from training.dataset import fingerprint, read_jsonl
from training.gpus import BatchPlan, batch_plan, process_count, process_gpu
from training.memory import system_prompt_of
from training.modeling import Precision, attention_implementation, nf4_config
from training.preference import final_metrics, preference_stage
from training.preflight import PreflightError, check_training_hardware, locate_model
from training.settings import resolved
from training.token_stats import TokenStats, measure_token_stats
from training.train_args import load_config, parse_args
from training.turns import check_control_tokens

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase
    from trl import SFTTrainer

logger = logging.getLogger(__name__)

RESULT_FILE = "result.json"
ADAPTER_DIRNAME = "adapter"
CHECKPOINTS_DIRNAME = "checkpoints"
Emit = Callable[[dict[str, Any]], None]


def _peft_targets(modules: tuple[str, ...]) -> str | list[str]:
    """PEFT reads the string "all-linear" as every linear layer but the output head."""
    return "all-linear" if modules == ("all-linear",) else list(modules)


def load_tokenizer_and_model(
    config: TrainConfig,
) -> tuple[PreTrainedTokenizerBase, PreTrainedModel, bool]:
    """Tokenizer (pad = <|endoftext|>, chat template set) and base model; 4-bit NF4 on CUDA.

    The model is located first (``training.preflight``): one that is not here and cannot be
    downloaded, or that this machine cannot train, stops the run at once with what to do.

    Returns (tokenizer, model, quantized).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cuda = torch.cuda.is_available()
    quantized = config.quantization == "4bit" or (config.quantization == "auto" and cuda)
    if quantized and not cuda:
        raise ValueError("quantization='4bit' needs a CUDA GPU; use 'auto' or 'none' on CPU")

    source = locate_model(config.base_model, "all")
    check_training_hardware(source, process_gpu() if cuda else [], quantized)
    tokenizer = AutoTokenizer.from_pretrained(source.path)
    if config.chat_template is not None:
        tokenizer.chat_template = config.chat_template
    if not tokenizer.chat_template:
        raise ValueError(f"{config.base_model} has no chat template; set chat_template")
    if PAD_TOKEN not in tokenizer.get_vocab():
        raise ValueError(f"{config.base_model}'s tokenizer has no {PAD_TOKEN} to pad with")
    # Padding with eos would hide <|im_end|> from the loss wherever the collator masks padding.
    tokenizer.pad_token = PAD_TOKEN
    check_control_tokens(tokenizer, config.base_model)

    kwargs: dict[str, Any] = {"attn_implementation": attention_implementation(cuda)}
    if quantized:
        kwargs["quantization_config"] = nf4_config()
        kwargs["dtype"] = torch.bfloat16
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    elif cuda:
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    else:
        kwargs["dtype"] = torch.float32
    model = AutoModelForCausalLM.from_pretrained(source.path, **kwargs)

    embeddings: Any = model.get_input_embeddings()
    vocab_rows = int(embeddings.num_embeddings)
    if len(tokenizer) > vocab_rows:
        raise ValueError(
            f"tokenizer has {len(tokenizer)} tokens but the model only {vocab_rows} embeddings; "
            "use the tokenizer of base_model (embeddings are never resized)"
        )
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.use_cache = False
    if quantized:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=True,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    logger.info(
        "loaded %s (quantized=%s, cuda=%s, attention=%s)",
        config.base_model,
        quantized,
        cuda,
        kwargs["attn_implementation"],
    )
    return tokenizer, model, quantized


def load_datasets(
    config: TrainConfig, tokenizer: PreTrainedTokenizerBase
) -> tuple[Dataset, Dataset, dict[str, Any]]:
    """Read the JSONL splits and tokenize them with the loss mask of ``chat_format``.

    Returns (train, eval, info) where info holds sample counts, drops and the fingerprint.
    """
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    splits = {"train": read_jsonl(config.train_file), "eval": read_jsonl(config.eval_file)}
    info: dict[str, Any] = {"dropped_too_long": 0}
    tokenized: dict[str, Dataset] = {}
    for name, samples in splits.items():
        path = config.train_file if name == "train" else config.eval_file
        rows: dict[str, list[list[int]]] = {"input_ids": [], "assistant_masks": []}
        for number, sample in enumerate(samples, start=1):
            system = sample[0]["content"] if sample else ""
            if not sample or system_prompt_of(system) != config.dataset.system_prompt:
                raise ValueError(
                    f"{path}: sample {number} does not start with the run's system prompt "
                    "(TrainConfig.dataset.system_prompt); build the dataset with the run's "
                    "dataset settings"
                )
            encoded = tokenize_for_training(
                tokenizer, sample, chat_template=config.chat_template, max_length=config.max_length
            )
            if len(encoded["input_ids"]) > config.max_length:
                info["dropped_too_long"] += 1
                continue
            rows["input_ids"].append(encoded["input_ids"])
            rows["assistant_masks"].append(encoded["assistant_masks"])
        if not rows["input_ids"]:
            raise ValueError(
                f"{path} has no usable samples ({len(samples)} read, the rest longer than "
                f"max_length={config.max_length}); training needs at least 1 {name} sample"
            )
        info[f"{name}_samples"] = len(rows["input_ids"])
        tokenized[name] = Dataset.from_dict(rows)
    info["dataset_size"] = config.dataset_size or len(splits["train"]) + len(splits["eval"])
    info["dataset_fingerprint"] = config.dataset_fingerprint or fingerprint(
        splits["train"], splits["eval"]
    )
    logger.info(
        "datasets: %d train, %d eval, %d longer than max_length dropped",
        info["train_samples"],
        info["eval_samples"],
        info["dropped_too_long"],
    )
    return tokenized["train"], tokenized["eval"], info


def _progress_callback(emit: Emit) -> Any:
    """A TrainerCallback that turns each log and evaluation into one JSON event."""
    from transformers import TrainerCallback

    class ProgressEvents(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            emit({"event": "start", "max_steps": state.max_steps})

        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> None:
            values = {k: v for k, v in (logs or {}).items() if isinstance(v, int | float)}
            if any(k.startswith("eval_") for k in values):
                event = "eval"
            elif "train_loss" in values:  # the summary; every log carries train_runtime
                event = "train_end"
            else:
                event = "log"
            emit({"event": event, "step": state.global_step, **values})

    return ProgressEvents()


def precision_of(model: PreTrainedModel, quantized: bool) -> Precision:
    """How the base model's weights are held while training: recorded in clone.json."""
    import torch

    if quantized:
        return "nf4"
    return "bf16" if model.dtype == torch.bfloat16 else "fp32"


def build_trainer(
    config: TrainConfig,
    tokenizer: PreTrainedTokenizerBase,
    model: PreTrainedModel,
    train_dataset: Dataset,
    eval_dataset: Dataset,
    emit: Emit,
    plan: BatchPlan | None = None,
) -> SFTTrainer:
    """TRL SFTTrainer with a LoRA adapter, step-wise eval/checkpoints and early stopping.

    ``plan`` (default: for this run's processes) divides the recipe's accumulation over the GPUs.
    """
    import torch
    from peft import LoraConfig
    from transformers import EarlyStoppingCallback
    from trl import SFTConfig, SFTTrainer

    cuda = torch.cuda.is_available()
    plan = plan or batch_plan(
        config.per_device_train_batch_size, config.gradient_accumulation_steps, process_count()
    )
    args = SFTConfig(
        output_dir=str(config.output_dir / CHECKPOINTS_DIRNAME),
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        lr_scheduler_type=config.lr_scheduler_type,
        # transformers 5 folded warmup_ratio into warmup_steps: a value below 1 is a ratio.
        warmup_steps=config.warmup_ratio,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_eval_batch_size,
        gradient_accumulation_steps=plan.accumulation,
        # A PeftModel is no PreTrainedModel, so transformers would leave DDP searching the graph
        # for unused parameters on every step; every LoRA parameter is used.
        ddp_find_unused_parameters=False,
        eval_strategy="steps",
        eval_steps=config.eval_steps,
        save_strategy="steps",
        save_steps=config.eval_steps,
        save_total_limit=2,
        save_only_model=True,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        # Real (non-pad) tokens per log line: num_input_tokens_seen, also what benchmarks time.
        include_num_input_tokens_seen="non_padding",
        report_to=[],
        disable_tqdm=True,
        seed=config.seed,
        # load_datasets already dropped longer samples; TRL refuses a max_length it would not
        # enforce (padding-free without packing), while packing needs it as the row length.
        max_length=config.max_length if config.packing or not config.padding_free else None,
        padding_free=config.padding_free,
        packing=config.packing,
        packing_strategy="bfd",
        use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        # The new names: TRL's default gradient_checkpointing=True is an alias transformers 5
        # resolves (with a warning) only when these are unset.
        activation_checkpointing=cuda,
        activation_checkpointing_kwargs={"use_reentrant": False} if cuda else None,
    )
    peft_config = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=_peft_targets(config.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    callbacks = [
        EarlyStoppingCallback(
            early_stopping_patience=config.early_stopping_patience,
            early_stopping_threshold=config.early_stopping_threshold,
        ),
        _progress_callback(emit),
    ]
    # Pre-tokenized data: TRL skips its own tokenization and turns assistant_masks into labels.
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )


def measure_tokens(trainer: SFTTrainer, train_dataset: Dataset, emit: Emit) -> TokenStats:
    """Token efficiency of the run's own batches; emitted as a ``tokens`` event and logged."""
    stats = measure_token_stats(trainer, train_dataset)
    emit({"event": "tokens", **stats.to_dict()})
    logger.info(
        "token efficiency %.3f (real/processed), loss tokens / owner tokens %.3f, %d batches",
        stats.token_efficiency,
        stats.loss_token_share,
        stats.batches,
    )
    return stats


def train(trainer: SFTTrainer) -> dict[str, float]:
    """Run training (the best checkpoint by eval_loss is reloaded at the end)."""
    output = trainer.train()
    metrics = {k: float(v) for k, v in output.metrics.items() if isinstance(v, int | float)}
    metrics["global_step"] = float(trainer.state.global_step)
    if trainer.state.best_global_step is not None:
        metrics["best_step"] = float(trainer.state.best_global_step)
    return metrics


def evaluate(trainer: SFTTrainer) -> dict[str, float]:
    """Evaluate the reloaded best adapter: eval_loss, eval_mean_token_accuracy, ..."""
    metrics = trainer.evaluate()
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def save_adapter(
    config: TrainConfig,
    trainer: SFTTrainer,
    tokenizer: PreTrainedTokenizerBase,
    metrics: dict[str, float],
    info: dict[str, Any],
    precision: Precision,
) -> Path:
    """Save adapter weights, tokenizer files and clone.json; drop the scratch checkpoints."""
    adapter_dir = config.output_dir / ADAPTER_DIRNAME
    adapter_model: Any = trainer.model
    adapter_model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    spec = CloneSpec(
        base_model=config.base_model,
        dataset=config.dataset,
        chat_template=str(tokenizer.chat_template),
        training=resolved(config),
        generation=config.generation,
        metrics=metrics,
        dataset_size=int(info["dataset_size"]),
        dataset_fingerprint=str(info["dataset_fingerprint"]),
        precision=precision,
        memory_index_version=INDEX_VERSION if config.dataset.memory else 0,
    )
    save_clone_spec(adapter_dir, spec)
    shutil.rmtree(config.output_dir / CHECKPOINTS_DIRNAME, ignore_errors=True)
    return adapter_dir


def write_result(output_dir: Path, result: dict[str, Any]) -> Path:
    """Write result.json (atomically), the run's summary for whoever started it."""
    path = output_dir / RESULT_FILE
    tmp = path.with_name(RESULT_FILE + ".tmp")
    tmp.write_text(json.dumps(result, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _event_writer(stream: TextIO) -> Emit:
    def emit(event: dict[str, Any]) -> None:
        stream.write(json.dumps(event) + "\n")
        stream.flush()

    return emit


def _is_main_process() -> bool:
    """True in a plain run and on rank 0 of an ``accelerate launch``."""
    from accelerate import PartialState

    return bool(PartialState().is_main_process)


def _discard_event(event: dict[str, Any]) -> None:
    """The events of the other ranks: the main one reports for all."""


def main(argv: list[str] | None = None) -> int:
    """Train one adapter; exit status 0 on success, 1 on failure (result.json says why)."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = load_config(parse_args(argv))
    config.output_dir.mkdir(parents=True, exist_ok=True)
    (config.output_dir / RESULT_FILE).unlink(missing_ok=True)
    # Under `accelerate launch` every rank runs main(): only the main one reports and saves.
    main_process = _is_main_process()
    emit = _event_writer(sys.stdout) if main_process else _discard_event
    # Libraries print to stdout now and then; stdout is reserved for the JSON events.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            tokenizer, model, quantized = load_tokenizer_and_model(config)
            precision = precision_of(model, quantized)
            train_dataset, eval_dataset, info = load_datasets(config, tokenizer)
            plan = batch_plan(
                config.per_device_train_batch_size,
                config.gradient_accumulation_steps,
                process_count(),
            )
            emit({"event": "batch", **plan.to_dict()})
            logger.info("batch: %s", plan.to_dict())
            trainer = build_trainer(
                config, tokenizer, model, train_dataset, eval_dataset, emit, plan
            )
            token_stats = measure_tokens(trainer, train_dataset, emit)
            train_metrics = train(trainer)
            supervised = evaluate(trainer)
            # The owner's feedback, on the same adapter; kept only if eval_loss allows it.
            preference = preference_stage(config, tokenizer, trainer, supervised, emit)
            metrics = {**train_metrics, **supervised, **token_stats.metrics()}
            metrics = final_metrics(metrics, preference)
            if not main_process:
                return 0
            adapter_dir = save_adapter(config, trainer, tokenizer, metrics, info, precision)
        except Exception as exc:
            if isinstance(exc, PreflightError):  # it says what to do; no traceback to read
                logger.error("%s", exc)
                error = str(exc)[:1000]
            else:
                logger.exception("training failed")
                error = f"{type(exc).__name__}: {exc}"[:1000]
            if main_process:
                write_result(config.output_dir, {"status": "failed", "error": error})
            emit({"event": "failed", "error": error})
            return 1
    result = {
        "status": "succeeded",
        "adapter_dir": str(adapter_dir),
        "metrics": metrics,
        "train_samples": info["train_samples"],
        "eval_samples": info["eval_samples"],
        "dropped_too_long": info["dropped_too_long"],
        "dataset_fingerprint": info["dataset_fingerprint"],
        "preference": preference.to_dict(),
        "precision": precision,
        "batch": plan.to_dict(),
        # Every log and evaluation of the run (loss curves are drawn from it).
        "log_history": trainer.state.log_history,
    }
    write_result(config.output_dir, result)
    # The history stays in result.json; one event line need not carry it.
    emit({"event": "done", **{k: v for k, v in result.items() if k != "log_history"}})
    return 0


if __name__ == "__main__":
    exit_child(main())
