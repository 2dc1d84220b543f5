"""The turn shaper: cleaning, control strings, serving windows, and serving = training."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from storage.db import Database
from storage.importer import import_export
from storage.messages import load_corpus
from storage.models import MessageRecord
from tests.export_factory import full_export
from tests.training.chat_builder import T0, Chat
from tests.training.synthetic_corpus import synthetic_corpus
from training.chat_format import ChatMessage, Role, TokenCounter, render
from training.config import DatasetConfig
from training.dataset import build_dataset
from training.memory import memory_reserve
from training.samples import targets
from training.turns import (
    CUT_MARKER,
    Line,
    chat_conversations,
    check_control_tokens,
    clean_text,
    exchanges,
    neutralise,
    serving_turns,
    shape_line,
)

CONFIG = DatasetConfig(system_prompt="SYS")
BIG = 10_000


def _cost(role: Role, content: str) -> int:
    return len(content) // 4 + 5


def _serve(chat: Chat, config: DatasetConfig = CONFIG, **kw: Any) -> list[ChatMessage] | None:
    shaped = serving_turns(
        chat.messages,
        config,
        now=kw.pop("now", chat.clock + timedelta(seconds=20)),
        reply_to=kw.pop("reply_to", None),
        budget=kw.pop("budget", BIG),
        cost=_cost,
    )
    return None if shaped is None else shaped.messages


def test_every_added_token_of_qwen25_is_neutralised(qwen_tokenizer: Any) -> None:
    added = [token.content for token in qwen_tokenizer.added_tokens_decoder.values()]
    assert len(added) == 22
    text = "a" + "b".join(added) + "c"
    assert neutralise(text) == "a" + "b" * 21 + "c"
    # Removing an inner control string must not leave an outer one assembled.
    assert neutralise("x<|im_<|im_end|>start|>y") == "xy"
    assert neutralise("<|<|im_end|>im_start|>") == ""
    assert neutralise("a < b | c > d, <tool>") == "a < b | c > d, <tool>"
    check_control_tokens(qwen_tokenizer, "Qwen2.5")


def test_a_tokenizer_with_control_tokens_the_shaper_misses_is_refused() -> None:
    from transformers import AutoTokenizer

    from tests.tiny_model import TOKENIZER_DIR

    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_DIR)
    tokenizer.add_special_tokens({"additional_special_tokens": ["[INST]"]})
    with pytest.raises(ValueError, match=r"\[INST\]"):
        check_control_tokens(tokenizer, "some-model")


def test_cleaning_is_the_same_for_every_message() -> None:
    assert clean_text("  line one\r\nline two\rthree <|im_end|> ") == "line one\nline two\nthree"
    record = MessageRecord(1, 1, 2, "F", False, T0, "call +7 916 123-45-67\r\n(Photo 1x1)")
    line = shape_line(record, CONFIG)
    assert isinstance(line, Line) and line.text == "call <PHONE>"
    assert shape_line(record.__class__(1, 2, 2, "F", False, T0, "<|im_start|>"), CONFIG) == "empty"


def test_serving_merges_bursts_keeps_the_opener_and_ends_on_the_user() -> None:
    chat = Chat().owner("I start this one", after=timedelta(0)).friend("a").friend("b")
    chat.owner("c").owner("d", after=timedelta(seconds=30)).friend("e")
    assert _serve(chat) == [
        {"role": "assistant", "content": "I start this one"},
        {"role": "user", "content": "a\nb"},
        {"role": "assistant", "content": "c\nd"},
        {"role": "user", "content": "e"},
    ]
    # The owner spoke last: nothing to answer, whether or not it is a new conversation.
    assert _serve(Chat().friend("x").owner("y")) is None
    late = Chat().friend("x").owner("y").owner("z", after=timedelta(minutes=20))
    assert _serve(late) is None


def test_serving_starts_at_the_last_silence() -> None:
    chat = Chat().friend("yesterday").owner("old")
    chat.friend("today", after=timedelta(days=1)).owner("new").friend("and now?")
    assert _serve(chat) == [
        {"role": "user", "content": "today"},
        {"role": "assistant", "content": "new"},
        {"role": "user", "content": "and now?"},
    ]


def test_serving_in_a_group_names_speakers_and_quotes_the_answered_message() -> None:
    group = Chat(chat_id=-5)
    group.friend("question for the owner", sender=(3, "Анна"))
    for index in range(6):
        group.friend(f"chatter {index}", sender=(4, "Борис"))
    turns = _serve(group, reply_to=1)
    assert turns == [
        {
            "role": "user",
            "content": "Анна: question for the owner\n"
            + "\n".join(f"Борис: chatter {i}" for i in range(2, 6)),
        }
    ]


def test_the_window_keeps_the_newest_exchanges_within_budget_and_pair_limit() -> None:
    chat = Chat()
    for index in range(10):
        chat.friend(f"q{index} " + "x" * 40).owner(f"a{index} " + "y" * 40)
    chat.friend("last question")
    turns = _serve(chat, budget=100)
    assert turns is not None and turns[-1] == {"role": "user", "content": "last question"}
    assert sum(_cost(m["role"], m["content"]) for m in turns) <= 100
    assert turns[0]["content"].startswith("q") and turns[-2]["content"].startswith("a9")
    few = _serve(chat, DatasetConfig(system_prompt="SYS", max_pairs_per_sample=2))
    assert few is not None and [m["content"][:2] for m in few] == ["q9", "a9", "la"]


def test_a_burst_longer_than_the_budget_is_cut_from_its_oldest_side() -> None:
    chat = Chat()
    for index in range(30):
        chat.friend(f"{index:02d}" + "ж" * 4_094, after=timedelta(seconds=1))
    shaped = serving_turns(
        chat.messages, CONFIG, now=chat.clock, reply_to=None, budget=2_000, cost=_cost
    )
    assert shaped is not None and shaped.cut
    [turn] = shaped.messages
    assert turn["content"].startswith(CUT_MARKER) and turn["content"].endswith("ж")
    assert "29" in turn["content"] and "00" not in turn["content"]
    assert _cost("user", turn["content"]) <= 2_000


def _unique(records: list[MessageRecord]) -> list[MessageRecord]:
    """Every owner text ends with its message id, so a turn's first line names its message."""
    return [
        r.__class__(**{**r.__dict__, "text": f"{r.text} ~{r.message_id}"})
        if r.is_owner and r.text
        else r
        for r in records
    ]


@pytest.mark.parametrize("max_seq_tokens", [160, 1024])
def test_serving_gives_every_training_sample_its_own_prefix(max_seq_tokens: int) -> None:
    """For each sample, the prompt serving builds just before its last target was written is
    the sample up to that target: same cleaning, merging, groups, speakers, quotes, openers
    and window (given the budget the target's own length leaves, as training had)."""
    config = DatasetConfig(system_prompt="SYS", max_seq_tokens=max_seq_tokens)
    records = _unique(synthetic_corpus(340))
    build = build_dataset(records, config)
    counter = TokenCounter(config)
    by_chat: dict[int, list[MessageRecord]] = defaultdict(list)
    for record in records:
        by_chat[record.chat_id].append(record)
    prompts: dict[str, list[list[ChatMessage]]] = defaultdict(list)
    for chat in by_chat.values():
        chat.sort(key=lambda r: (r.date, r.message_id))
        lines = [x for r in chat if isinstance(x := shape_line(r, config), Line)]
        for conversation in chat_conversations(lines, config):
            for item in exchanges(conversation, config)[0]:
                first_id = int(item.reply.lines[0].rsplit("~", 1)[1])
                index = next(i for i, r in enumerate(chat) if r.message_id == first_id)
                budget = config.max_seq_tokens - counter.system - memory_reserve(config)
                shaped = serving_turns(
                    chat[:index],
                    config,
                    now=chat[index].date,
                    reply_to=chat[index].reply_to_id,
                    budget=budget - counter.message("assistant", item.reply.text),
                    cost=counter.message,
                )
                if shaped is not None:
                    prompts[item.reply.text].append(shaped.messages)
    checked = 0
    for sample in build.train + build.eval:
        expected = [{k: v for k, v in m.items() if k != "weight"} for m in sample[1:-1]]
        assert expected in prompts[targets(sample)[-1]], expected
        checked += 1
    assert checked > 100


async def test_an_imported_export_with_control_strings_trains_on_clean_turns(
    tmp_path: Path, qwen_tokenizer: Any
) -> None:
    controls = [token.content for token in qwen_tokenizer.added_tokens_decoder.values()]
    export = full_export(conversations=6, chats=2)
    for chat in export["chats"]["list"]:
        for index, message in enumerate(chat["messages"]):
            if message["type"] == "message":
                control = controls[index % len(controls)]
                message["text"] = f"{control}assistant\n{message['text_entities'][0]['text']}"
    path = tmp_path / "result.json"
    path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    db = await Database.open(tmp_path / "db.sqlite3")
    await import_export(db, path)
    records = await load_corpus(db)
    await db.close()
    build = build_dataset(records, CONFIG, qwen_tokenizer)
    samples = build.train + build.eval
    assert samples and all(
        control not in m["content"] for s in samples for m in s for control in controls
    )
    start, end = qwen_tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    for sample in samples:
        text = render(qwen_tokenizer, sample, chat_template=None, add_generation_prompt=False)
        ids = qwen_tokenizer(text, add_special_tokens=False)["input_ids"]
        assert ids.count(start) == ids.count(end) == len(sample)
        assert set(ids) & set(qwen_tokenizer.added_tokens_decoder) == {start, end}
