"""A frozen eval set, so that eval losses of successive runs can be compared.

``build_dataset`` holds out the most recent conversations, so every new message moves the
eval set and two runs' eval losses measure different things. ``freeze_eval`` pins it:

* The first call (or when the store holds nothing usable) saves the build's eval set in
  ``store_dir`` (``frozen_eval.jsonl`` + ``frozen_eval.json`` with its fingerprint) and
  returns the build as it is.
* Later calls reuse the saved set as long as the corpus still supports it: every owner reply
  in it is still produced by the new build (with the same system prompt). The new build's
  samples that share an owner reply with the frozen set are removed from training (nothing
  evaluated is trained on); the rest, the newly recent conversations included, train.
* When the corpus no longer supports it (the owner deleted a chat with /forget, or the
  dataset rules changed the text or turned memory off), the frozen set is replaced by the new
  build's eval set: deleted messages must not live on in a frozen file.
* ``frozen_lines`` gives the frozen set's owner lines before a build, so that no training
  sample's memory block shows them (``build_dataset(held_out=...)``).

Runs with the same ``DatasetBuild.eval_fingerprint`` were evaluated on the same samples.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path

from storage.private_files import private_dir, write_private_text
from training.dataset import (
    DatasetBuild,
    Sample,
    eval_fingerprint,
    fingerprint,
    read_jsonl,
    write_jsonl,
)
from training.memory import held_out_lines, memory_snippets, system_prompt_of
from training.samples import targets

logger = logging.getLogger(__name__)

FROZEN_SAMPLES = "frozen_eval.jsonl"
FROZEN_META = "frozen_eval.json"


def _prompts(samples: list[Sample]) -> set[str]:
    return {system_prompt_of(sample[0]["content"]) for sample in samples}


def _has_memory(samples: list[Sample]) -> bool:
    return any(memory_snippets(sample[0]["content"]) for sample in samples)


def frozen_lines(store_dir: Path) -> frozenset[str]:
    """The owner lines of the frozen eval set in ``store_dir`` (empty when there is none):
    the next build keeps them out of its training samples' memory blocks."""
    frozen = _load(Path(store_dir))
    return held_out_lines(frozen) if frozen else frozenset()


def _replies(samples: list[Sample]) -> set[str]:
    return {reply for sample in samples for reply in targets(sample)}


def _load(store_dir: Path) -> list[Sample] | None:
    try:
        samples = read_jsonl(store_dir / FROZEN_SAMPLES)
        meta = json.loads((store_dir / FROZEN_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not samples or meta.get("eval_fingerprint") != eval_fingerprint(samples):
        return None  # a half-written or edited store is not a frozen set
    return samples


def _save(store_dir: Path, build: DatasetBuild) -> None:
    private_dir(store_dir)
    write_jsonl(store_dir / FROZEN_SAMPLES, build.eval)
    meta = {"eval_fingerprint": build.eval_fingerprint, "frozen_from": build.fingerprint}
    tmp = store_dir / (FROZEN_META + ".tmp")
    write_private_text(tmp, json.dumps(meta, indent=2))
    os.replace(tmp, store_dir / FROZEN_META)


def freeze_eval(build: DatasetBuild, store_dir: Path) -> DatasetBuild:
    """The build with its eval set frozen in ``store_dir`` (see the module docstring).

    ``stats["eval_frozen_reused"]`` is 1 when a saved set was reused, and
    ``stats["train_removed_for_frozen_eval"]`` counts the samples taken out of training.
    """
    store_dir = Path(store_dir)
    frozen = _load(store_dir)
    everything = build.train + build.eval
    # A memory block may differ from one build to the next (older messages imported since);
    # the system prompt, and whether there are blocks at all, must not.
    supported = (
        frozen is not None
        and _prompts(frozen) <= _prompts(everything)
        and _has_memory(frozen) == _has_memory(everything)
        and _replies(frozen) <= _replies(everything)
    )
    if frozen is None or not supported:
        if build.eval:
            _save(store_dir, build)
            logger.info("eval set frozen: %d samples", len(build.eval))
        return replace(build, stats={**build.stats, "eval_frozen_reused": 0})
    frozen_replies = _replies(frozen)
    train = [s for s in everything if not any(reply in frozen_replies for reply in targets(s))]
    logger.info("frozen eval set reused: %d samples", len(frozen))
    return replace(
        build,
        train=train,
        eval=frozen,
        fingerprint=fingerprint(train, frozen),
        eval_fingerprint=eval_fingerprint(frozen),
        stats={
            **build.stats,
            "samples_train": len(train),
            "samples_eval": len(frozen),
            "eval_frozen_reused": 1,
            "train_removed_for_frozen_eval": len(everything) - len(train),
        },
    )
