"""Dataset building: sessions, merging, groups, rules with reasons, windows, split, JSONL."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest

from storage.models import MessageRecord
from tests.training.chat_builder import OWNER_REPLY, T0, Chat, all_samples, contents, trained
from training.config import DatasetConfig
from training.dataset import build_dataset, read_jsonl, write_jsonl

CONFIG = DatasetConfig(system_prompt="SYS", eval_fraction=0.25)
RULES_ALONE = DatasetConfig(
    system_prompt="SYS", eval_fraction=0.25, match_owner_lengths=False, drop_short_prompt=True
)
"""The reply rules deciding alone (the seed's defaults): every flagged reply is context."""


def test_close_messages_of_one_side_merge_into_one_turn() -> None:
    chat = Chat().friend("hey you there").friend("are you coming tonight?")
    chat.owner("yes, just got home", after=timedelta(seconds=30)).owner(after=timedelta(minutes=2))
    (sample,) = all_samples(build_dataset(chat.messages, CONFIG))
    assert sample == [
        {"role": "system", "content": "SYS"},
        {"role": "user", "content": "hey you there\nare you coming tonight?"},
        {"role": "assistant", "content": f"yes, just got home\n{OWNER_REPLY}"},
    ]


def test_a_late_unanswered_owner_message_opens_a_new_conversation() -> None:
    chat = Chat().friend().owner("on my way, will be there soon")
    chat.owner("I am here now, where are you all", after=timedelta(minutes=10))
    chat.friend("we are inside by the bar").owner()
    build = build_dataset(chat.messages, CONFIG)
    assert build.conversations == 2
    # The opener stays as context of the conversation it opens; it is never a target.
    assert trained(build) == ["on my way, will be there soon", OWNER_REPLY]
    opener = (build.train + build.eval)[1][1]
    assert opener == {
        "role": "assistant",
        "content": "I am here now, where are you all",
        "weight": 0,
    }
    assert build.stats["opener_context"] == 1 and "owner_opener" not in build.drops
    dropped = build_dataset(chat.messages, DatasetConfig(system_prompt="SYS", owner_starts="drop"))
    assert contents(dropped, "assistant") == ["on my way, will be there soon", OWNER_REPLY]
    assert dropped.drops["owner_opener"] == 1
    prompted = build_dataset(
        chat.messages, DatasetConfig(system_prompt="SYS", owner_starts="neutral_prompt")
    )
    assert "…" in contents(prompted, "user")
    assert prompted.stats["owner_openers_prompted"] == 1
    assert "owner_opener" not in prompted.drops


def test_a_gap_of_a_day_and_a_minute_starts_a_new_conversation() -> None:
    # 1 day + 1 minute: timedelta.seconds is 60, so a `.seconds` check would not split here.
    chat = Chat().friend("first question for you?").owner()
    chat.friend("next day question for you?", after=timedelta(days=1, minutes=1)).owner()
    chat.friend("soon after that, ok?", after=timedelta(minutes=29)).owner()
    build = build_dataset(chat.messages, CONFIG)
    assert build.conversations == 2 and build.stats["sessions"] == 2


def test_every_drop_is_counted_with_its_reason() -> None:
    chat = Chat()
    chat.owner("I start this chat with nothing before it, hello")  # opener: context
    chat.friend("joined", kind="service")
    chat.friend("", kind="media")
    chat.friend("look at this thing here", forwarded_from="Some Channel")
    chat.friend("@gif cats", via_bot="gif")
    chat.friend("   ")  # empty
    chat.friend("(File not included. Change data exporting settings to download.)")
    chat.friend("q1 for you?").owner("ok")  # filler
    chat.friend("q2 for you?").owner("😂😂 🎉")  # emoji_only
    chat.friend("q3 for you?").owner("maybe later")  # short_reply
    chat.friend("hm?").owner()  # short_prompt
    chat.friend("q4 for you?").owner()  # kept
    chat.friend("q4 for you?").owner()  # duplicate
    chat.friend("Q4 for you!!").owner(OWNER_REPLY.upper())  # near_duplicate
    chat.friend("12:45").owner("2024-01-01 10:00")  # technical (two messages)
    chat.friend("q5, never answered?")  # prompt_without_reply
    build = build_dataset(chat.messages, RULES_ALONE)
    assert build.drops == {
        "duplicate": 1,
        "emoji_only": 1,
        "empty": 1,
        "filler": 1,
        "forwarded": 1,
        "media": 1,
        "near_duplicate": 1,
        "prompt_without_reply": 1,
        "service": 1,
        "short_prompt": 1,
        "short_reply": 1,
        "technical": 3,
        "via_bot": 1,
    }
    assert trained(build) == [OWNER_REPLY]
    assert build.stats["opener_context"] == 1
    # Replies not trained on stay in the sample as context, in order; those after the last
    # target are in no sample (nothing after them is trained).
    assert contents(build, "assistant") == [
        "I start this chat with nothing before it, hello",
        "ok",
        "😂😂 🎉",
        "maybe later",
        OWNER_REPLY,
        OWNER_REPLY,
    ]
    assert build.dropped_reply_words["short_reply"] == [2]


def test_rules_can_be_switched_off() -> None:
    chat = Chat().friend("q1 for you?").owner("ok").friend("q2 for you?").owner("🎉")
    chat.friend("q3?").owner("no way").friend("look", forwarded_from="X").owner("no way")
    config = DatasetConfig(
        system_prompt="SYS",
        drop_filler=False,
        drop_short=False,
        drop_emoji_only=False,
        drop_short_prompt=False,
        drop_forwarded=False,
        drop_duplicates=False,
    )
    build = build_dataset(chat.messages, config)
    assert contents(build, "assistant") == ["ok", "🎉", "no way", "no way"]
    assert build.drops == {}


def test_keep_short_ratio_keeps_a_deterministic_share() -> None:
    chat = Chat()
    for index in range(200):
        chat.friend(f"question number {index} for you?").owner(f"fine {index}")
    config = DatasetConfig(system_prompt="SYS", keep_short_ratio=0.3, match_owner_lengths=False)
    build = build_dataset(chat.messages, config)
    kept = build.stats["short_replies_kept"]
    assert 40 <= kept <= 80 and build.drops["short_reply"] == 200 - kept
    assert build_dataset(chat.messages, config).fingerprint == build.fingerprint


def test_private_data_is_scrubbed_by_default() -> None:
    chat = Chat().friend("what is your number again?").owner("call me at +7 916 123-45-67 ok")
    assert contents(build_dataset(chat.messages, CONFIG), "assistant") == ["call me at <PHONE> ok"]
    raw = build_dataset(chat.messages, DatasetConfig(scrub_private_data=False))
    assert "+7 916 123-45-67" in contents(raw, "assistant")[0]


def _group() -> Chat:
    group = Chat(chat_id=-100)
    anna, boris, vika = (3, "Анна"), (4, "Борис"), (5, "Вика")
    group.friend("кто идёт в субботу на концерт?", sender=anna)  # id 1, the owner replies to it
    for index in range(20):
        group.friend(f"болтовня номер {index} без владельца", sender=boris)
    group.friend("мы с Борисом точно идём", sender=vika)
    group.friend("а ты что скажешь?", sender=boris)
    group.owner("я тоже иду, только возьму билеты", reply_to_id=1)
    return group


def test_groups_keep_a_bounded_context_with_speaker_names() -> None:
    build = build_dataset(_group().messages, DatasetConfig(system_prompt="SYS"))
    (sample,) = all_samples(build)
    prompt = sample[1]["content"].split("\n")
    # The replied-to message is quoted first, then the last four messages before the reply.
    assert prompt[0] == "Анна: кто идёт в субботу на концерт?"
    assert prompt[-2:] == ["Вика: мы с Борисом точно идём", "Борис: а ты что скажешь?"]
    assert len(prompt) == 5
    assert sample[-1] == {"role": "assistant", "content": "я тоже иду, только возьму билеты"}
    assert build.stats["group_messages_out_of_context"] == 18


def test_windows_fit_the_token_budget_and_end_on_the_owner() -> None:
    chat = Chat()
    for index in range(12):
        chat.friend(f"question {index} " + "word " * 30).owner(f"{OWNER_REPLY} {index}")
    config = DatasetConfig(
        system_prompt="SYS", max_seq_tokens=120, chars_per_token=4.0, memory=False
    )
    build = build_dataset(chat.messages, config)
    samples = all_samples(build)
    assert len(samples) > 1 and build.conversations == 1
    # Packed from the newest reply back: every reply is a target exactly once, in order.
    assert contents(build, "assistant") == [f"{OWNER_REPLY} {i}" for i in range(12)]
    for sample in samples:
        assert sample[-1]["role"] == "assistant"
        assert sum(len(m["content"]) / 4 + 5 for m in sample) <= 120 + len(sample)


def test_a_pair_longer_than_the_budget_is_dropped_as_too_long() -> None:
    chat = Chat().friend("long " * 400).owner().friend().owner()
    config = DatasetConfig(system_prompt="SYS", max_seq_tokens=100, memory=False)
    build = build_dataset(chat.messages, config)
    assert build.drops["too_long"] == 1 and len(all_samples(build)) == 1


def _many_conversations(n: int = 40) -> list[MessageRecord]:
    messages = []
    for index in range(n):
        chat = Chat(chat_id=index % 5 + 1, start=T0 + timedelta(days=index))
        chat.friend(f"conversation {index} question?").owner(f"{OWNER_REPLY} number {index}")
        chat.friend(f"conversation {index} follow up?").owner()
        messages += chat.messages
    return messages


def test_eval_holds_out_the_most_recent_conversations() -> None:
    messages = _many_conversations()
    build = build_dataset(messages, DatasetConfig(system_prompt="SYS"))
    eval_ids = sorted(int(s[1]["content"].split()[1]) for s in build.eval)
    assert eval_ids == [36, 37, 38, 39]
    assert len(build.train) == 36 and build.conversations == 40
    shuffled = list(messages)
    random.Random(7).shuffle(shuffled)
    again = build_dataset(shuffled, DatasetConfig(system_prompt="SYS"))
    assert again.fingerprint == build.fingerprint and len(build.fingerprint) == 64


def test_two_conversations_give_one_eval_sample() -> None:
    build = build_dataset(_many_conversations(2), DatasetConfig(system_prompt="SYS"))
    assert len(build.train) == 1 and len(build.eval) == 1


def test_a_streamed_corpus_must_come_in_storage_order() -> None:
    messages = _many_conversations(4)
    ordered = sorted(messages, key=lambda m: (m.chat_id, m.date))
    assert (
        build_dataset(iter(ordered), CONFIG).fingerprint
        == build_dataset(messages, CONFIG).fingerprint
    )
    with pytest.raises(ValueError, match="ordered by chat_id"):
        build_dataset(iter(ordered[::-1]), CONFIG)


def test_jsonl_round_trip(tmp_path: Path) -> None:
    build = build_dataset(_many_conversations(6), CONFIG)
    path = tmp_path / "train.jsonl"
    assert write_jsonl(path, build.train) == len(build.train)
    assert read_jsonl(path) == build.train
