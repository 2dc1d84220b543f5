"""Style figures over reply lists, checked against values worked out by hand."""

from __future__ import annotations

import pytest

from training.style_checks import (
    assistant_share,
    distinct_2,
    emoji_rate_distance,
    length_distance,
    sounds_like_assistant,
    style_scores,
    wasserstein_1,
    words,
)


def test_wasserstein_of_equal_sized_samples_is_the_mean_gap_of_sorted_values() -> None:
    # sorted pairs (10, 10), (20, 20), (30, 60): gaps 0, 0, 30 -> mean 10
    assert wasserstein_1([60, 10, 20], [30, 20, 10]) == pytest.approx(10.0)


def test_wasserstein_of_unequal_samples_is_the_area_between_the_cdfs() -> None:
    # CDFs of {10, 30} and {20}: |0.5 - 0| on [10, 20) and |0.5 - 1| on [20, 30) -> 5 + 5
    assert wasserstein_1([10, 30], [20]) == pytest.approx(10.0)
    assert wasserstein_1([7], [7]) == 0.0


def test_length_distance_is_relative_to_the_owners_mean_length() -> None:
    real = ["a" * 10, "б" * 20, "c" * 30]  # mean 20 characters
    generated = ["x" * 10, "я" * 20, "y" * 60]
    assert length_distance(generated, real) == pytest.approx(10 / 20)
    assert length_distance(real, real) == 0.0
    # Surrounding whitespace is not length; Cyrillic counts one per letter.
    assert length_distance(["  привет \n"], ["привет"]) == 0.0


def test_length_distance_refuses_empty_real_replies() -> None:
    with pytest.raises(ValueError, match="empty"):
        length_distance(["hi"], ["", "  "])
    with pytest.raises(ValueError, match="no real replies"):
        length_distance(["hi"], [])


def test_emoji_rate_distance_compares_shares_of_replies_with_an_emoji() -> None:
    real = ["ок 👍", "да", "нет", "ахах 😂😂"]  # 2 of 4 have an emoji
    generated = ["ok", "sure ❤️", "no", "fine", "yes"]  # 1 of 5
    assert emoji_rate_distance(generated, real) == pytest.approx(abs(1 / 5 - 2 / 4))
    assert emoji_rate_distance(real, real) == 0.0


@pytest.mark.parametrize(
    "text",
    [
        "As an AI, I don't have weekends.",
        "I'm Qwen, created by Alibaba Cloud.",
        "i am qwen",
        "I’m an AI assistant",
        "I am a large language model trained to help",
        "Certainly! Here is the list you asked for",
        "How can I assist you today?",
        "Как ИИ, я не могу ходить в кино",
        "Как языковая модель, я не имею мнения",
        "Конечно! Вот несколько идей:",
        "Здравствуйте! Чем могу помочь?",
        "Я — ИИ, у меня нет выходных",
        "я виртуальный помощник",
    ],
)
def test_assistant_phrases_are_caught_in_both_languages(text: str) -> None:
    assert sounds_like_assistant(text)


@pytest.mark.parametrize(
    "text",
    [
        "ну как-то так, завтра созвонимся",
        "Конечно, вот фотки с дачи",  # a comma, not the assistant's "Конечно! Вот"
        "какими судьбами?",
        "эта языковая модель опять тупит",  # talk about models is the owner's business
        "I'm at home, call me",
        "can you help me move on Sunday?",
    ],
)
def test_ordinary_replies_are_not_flagged(text: str) -> None:
    assert not sounds_like_assistant(text)


def test_assistant_share_counts_replies_not_matches() -> None:
    replies = ["As an AI, as an AI", "ну ок", "Конечно! Вот список", "I'm Qwen"]
    assert assistant_share(replies) == pytest.approx(3 / 4)


def test_distinct_2_pools_bigrams_within_replies() -> None:
    # (я, иду), (иду, домой) twice: 2 unique of 4
    assert distinct_2(["Я иду домой", "я иду, домой!"]) == pytest.approx(2 / 4)
    # (hello, there), (there, friend), (hello, there): 2 unique of 3; no pair across replies
    assert distinct_2(["Hello there, friend", "hello there"]) == pytest.approx(2 / 3)
    assert distinct_2(["ok", "да", "👍"]) == 1.0


def test_words_ignore_punctuation_and_emoji() -> None:
    assert words("Привет, МИР! 👋 ok_2") == ["привет", "мир", "ok_2"]


def test_style_scores_carry_every_figure_and_the_sample_count() -> None:
    generated = ["As an AI I cannot", "ok ok ok"]
    real = ["иду домой 🏠", "ок"]
    scores = style_scores(generated, real)
    assert scores == {
        # lengths 17, 8 vs 11, 2 (the emoji is one character): sorted gaps 6, 6 over mean 6.5
        "style_length_distance": pytest.approx(6 / 6.5),
        "style_emoji_rate_distance": pytest.approx(0.5),
        "style_assistant_share": pytest.approx(0.5),
        # (as, an) (an, ai) (ai, i) (i, cannot) (ok, ok) (ok, ok): 5 unique of 6
        "style_distinct_2": pytest.approx(5 / 6),
        "style_distinct_2_owner": 1.0,
        "style_samples": 2.0,
    }
    with pytest.raises(ValueError, match="at least one"):
        style_scores([], real)


def test_memory_overlap_counts_replies_that_use_what_memory_showed() -> None:
    generated = ["Давай в Октябрь, там кресла", "не знаю", "ок", "Рыбачил на озере"]
    real = ["в кинотеатр Октябрь пойдём", "работаю до вечера", "ок", "да"]
    snippets = [
        ["В кино хожу только в Октябрь"],  # generated: октябрь; real: октябрь
        ["Работаю над отчётом до пятницы"],  # generated: no; real: работаю ~ работаю
        [],  # no block: not counted
        ["Ездили на рыбалку на озеро"],  # generated: озере ~ озеро; real: no
    ]
    scores = style_scores(generated, real, snippets)
    assert scores["style_memory_overlap"] == pytest.approx(2 / 3)
    assert scores["style_memory_overlap_owner"] == pytest.approx(2 / 3)
    assert "style_memory_overlap" not in style_scores(generated, real, [[], [], [], []])
    assert "style_memory_overlap" not in style_scores(generated, real)
