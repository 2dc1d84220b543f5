"""Dataset building: sessions, merging, filters with reasons, split, fingerprint, JSONL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from storage.models import MessageRecord
from training.config import DatasetConfig
from training.dataset import DatasetBuild, build_dataset, read_jsonl, write_jsonl

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OWNER_REPLY = "that sounds great, count me in for sure"
CONFIG = DatasetConfig(system_prompt="SYS", eval_fraction=0.25)


class Chat:
    """Builds the messages of one chat, a minute apart unless told otherwise."""

    def __init__(self, chat_id: int = 1) -> None:
        self.chat_id = chat_id
        self.messages: list[MessageRecord] = []
        self.clock = T0

    def say(
        self, owner: bool, text: str, after: timedelta = timedelta(minutes=1), **kw: Any
    ) -> Chat:
        self.clock += after
        self.messages.append(
            MessageRecord(
                chat_id=self.chat_id,
                message_id=len(self.messages) + 1,
                sender_id=1 if owner else 2,
                sender_name="Owner" if owner else "Friend",
                is_owner=owner,
                date=self.clock,
                text=text,
                **kw,
            )
        )
        return self

    def friend(self, text: str, **kw: Any) -> Chat:
        return self.say(False, text, **kw)

    def owner(self, text: str = OWNER_REPLY, **kw: Any) -> Chat:
        return self.say(True, text, **kw)


def _all_samples(build: DatasetBuild) -> list[list[dict[str, str]]]:
    return [list(map(dict, s)) for s in build.train + build.eval]


def test_consecutive_messages_of_one_side_merge_into_one_turn() -> None:
    chat = Chat().friend("hey").friend("are you there?").owner("yes, just got home").owner()
    build = build_dataset(chat.messages, CONFIG)
    (sample,) = _all_samples(build)
    assert sample == [
        {"role": "system", "content": "SYS"},
        {"role": "user", "content": "hey\nare you there?"},
        {"role": "assistant", "content": f"yes, just got home\n{OWNER_REPLY}"},
    ]


def test_a_gap_of_a_day_and_a_minute_starts_a_new_conversation() -> None:
    # 1 day + 1 minute: timedelta.seconds is 60, so a `.seconds` check would not split here.
    chat = Chat().friend("first question?").owner()
    chat.friend("next day question?", after=timedelta(days=1, minutes=1)).owner()
    chat.friend("soon after?", after=timedelta(minutes=29)).owner()
    build = build_dataset(chat.messages, CONFIG)
    assert build.conversations == 2
    assert build.stats["sessions"] == 2
    users = sorted(
        tuple(m["content"] for m in s if m["role"] == "user") for s in _all_samples(build)
    )
    assert users == [("first question?",), ("next day question?", "soon after?")]


def test_every_drop_is_counted_with_its_reason() -> None:
    chat = Chat()
    chat.owner("I start this chat with nothing before it, hello")  # no_prompt
    chat.friend("joined", kind="service")
    chat.friend("", kind="media")
    chat.friend("look at this", forwarded_from="Some Channel")
    chat.friend("@gif cats", via_bot="gif")
    chat.friend("   ")  # empty
    chat.friend("q1?").owner("ok")  # filler (+ its prompt)
    chat.friend("q2?").owner("😂😂 🎉")  # emoji_only
    chat.friend("q3?").owner("maybe later")  # short_reply
    chat.friend("q4?").owner()  # kept
    chat.friend("q5, never answered?")  # prompt_without_reply
    build = build_dataset(chat.messages, CONFIG)
    assert build.drops == {
        "empty": 1,
        "emoji_only": 1,
        "filler": 1,
        "forwarded": 1,
        "media": 1,
        "no_prompt": 1,
        "prompt_without_reply": 4,
        "service": 1,
        "short_reply": 1,
        "via_bot": 1,
    }
    (sample,) = _all_samples(build)
    assert [m["content"] for m in sample] == ["SYS", "q4?", OWNER_REPLY]


def test_filters_can_be_switched_off() -> None:
    chat = Chat().friend("q1?").owner("ok").friend("q2?").owner("🎉").friend("q3?").owner("no way")
    config = DatasetConfig(
        system_prompt="SYS", drop_filler=False, drop_short=False, drop_emoji_only=False
    )
    (sample,) = _all_samples(build_dataset(chat.messages, config))
    assert [m["content"] for m in sample if m["role"] == "assistant"] == ["ok", "🎉", "no way"]


def _many_conversations(n: int = 40) -> list[MessageRecord]:
    messages = []
    for index in range(n):
        chat = Chat(chat_id=index % 5)
        chat.clock = T0 + timedelta(days=index)
        chat.friend(f"conversation {index} question?").owner(f"{OWNER_REPLY} number {index}")
        chat.friend(f"conversation {index} follow up?").owner()
        messages += chat.messages
    return messages


def test_samples_start_with_system_alternate_and_end_on_the_owner() -> None:
    build = build_dataset(_many_conversations(), CONFIG)
    assert build.conversations == 40
    for sample in _all_samples(build):
        roles = [m["role"] for m in sample]
        assert roles[0] == "system" and roles[-1] == "assistant"
        assert roles[1:] == ["user", "assistant"] * ((len(roles) - 1) // 2)


def test_split_is_by_conversation_and_deterministic() -> None:
    messages = _many_conversations()
    build = build_dataset(messages, CONFIG)
    assert build.eval and build.train

    def ids(samples: list[Any]) -> set[str]:
        return {s[1]["content"].split()[1] for s in samples}

    assert not ids(build.train) & ids(build.eval)
    assert len(ids(build.train) | ids(build.eval)) == 40

    shuffled = list(messages)
    random.Random(7).shuffle(shuffled)
    again = build_dataset(shuffled, CONFIG)
    assert again.fingerprint == build.fingerprint
    assert again.train == build.train and again.eval == build.eval
    other_seed = build_dataset(messages, DatasetConfig(system_prompt="SYS", split_seed=1))
    assert other_seed.fingerprint != build.fingerprint
    assert len(build.fingerprint) == 64


def test_two_conversations_give_one_eval_sample() -> None:
    build = build_dataset(_many_conversations(2), DatasetConfig(system_prompt="SYS"))
    assert len(build.train) == 1 and len(build.eval) == 1


def test_long_conversations_are_cut_into_windows_in_one_split() -> None:
    chat = Chat()
    for index in range(5):
        chat.friend(f"question {index}?").owner()
    config = DatasetConfig(system_prompt="SYS", max_pairs_per_sample=2)
    build = build_dataset(chat.messages, config)
    assert build.conversations == 3
    # Windows of one conversation share its split (here: all train, as it is the only one).
    assert [len(s) for s in build.train] == [5, 5, 3]


def test_jsonl_round_trip(tmp_path: Path) -> None:
    build = build_dataset(_many_conversations(6), CONFIG)
    path = tmp_path / "train.jsonl"
    assert write_jsonl(path, build.train) == len(build.train)
    assert read_jsonl(path) == build.train
