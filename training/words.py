"""Content words: the words of a message that say what it is about.

Memory retrieval (``training.memory``), its benchmark and the style checks compare texts by
content words: lower-cased runs of letters and digits (``_`` and punctuation split them), at
least ``MIN_WORD_CHARS`` long, without stop-words in the language of the word's script
(Cyrillic words against the Russian and Ukrainian lists together, Latin ones against the
English list). Two word forms match through their ``stem``: the first ``STEM_CHARS``
characters (a shorter word without its last letter). Truncating to five characters is a
crude stemmer, but for Russian and Ukrainian, whose inflections change the ends of words, it
does about as well as a real one for retrieval (встречаемся, встретимся, встреча -> встре;
работаю, работы -> работ), and it needs no dictionary. The FTS5 index matches it as a
prefix query. Russian writers often type е for ё, so stems compare with ё read as е (the
index keeps the letter as typed; see ``training.memory``).
"""

from __future__ import annotations

import re
import unicodedata

MIN_WORD_CHARS = 3
STEM_CHARS = 5
_WORD = re.compile(r"[^\W_]+")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")

_RUSSIAN = """
а без более бы был была были было быть в вам вас весь во вот все всего всех вы где да даже
для до его ее её если есть еще ещё же за здесь и из или им их к как какой когда кто ли либо мне
меня мной мы на над нам нас не него нее неё нет ни них но ну о об однако он она они оно от очень
по под при с со так также такой там те тем то того тоже той только том ты у уже хотя чего чей
чем что чтобы чье чья эта эти это этого этой этом этот я ага ок окей ладно хорошо спасибо спс
да нет привет пока сейчас ща щас тут вообще просто может можно нужно надо будет буду будем
было есть был мой моя мое моё мои твой твоя твое твоё твои свой своя свое своё свои сам сама
сами себя себе тебе тебя тобой ему ей им ими нему ней ним нём том тот та ту те кого кому чем
чём где куда откуда почему зачем какая какое какие сколько вроде типа короче кстати блин
давай давайте слушай смотри ну-ка угу хм ого ой ах эх ха хах хаха ахах ахаха лол норм
"""
_UKRAINIAN = """
а або але б би був була були було бути в вам вас ви від він вона вони воно все всі де для до
є же з за зі і із їх й його її как коли котрий хто ле ми мене мені мною на над нам нас не немає
ні ніж но ну о об от по під при про с та так також там те тебе тебе ти тим то того тож той
тому тут у уже хоч це цей ця ці цього цим цій через чи чого що щоб як який яка яке які я так
ні привіт дякую добре гаразд окей ок ага зараз просто можна треба буде буду будемо мій моя моє
мої твій твоя твоє твої свій своя своє свої себе собі тобі йому їй ним ній них де куди чому
навіщо скільки типу коротше до речі блін давай слухай дивись угу ого ой хаха лол норм
"""
_ENGLISH = """
a about above after again all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has
have having he her here hers herself him himself his how i if in into is it its itself just me
more most my myself no nor not now of off on once only or other our ours out over own same she
should so some such than that the their theirs them then there these they this those through
to too under until up very was we were what when where which while who whom why will with would
you your yours yourself yeah yes yep ok okay thanks thank hi hey hello bye lol haha hmm oh well
really just like get got gonna wanna let lets also still even
"""
STOP_WORDS: dict[str, frozenset[str]] = {
    "cyrillic": frozenset(_RUSSIAN.split()) | frozenset(_UKRAINIAN.split()),
    "latin": frozenset(_ENGLISH.split()),
}
"""Stop-words by script; Russian and Ukrainian share one list (their scripts are one)."""


def _stop_words(word: str) -> frozenset[str]:
    return STOP_WORDS["cyrillic" if _CYRILLIC.search(word) else "latin"]


def content_words(text: str) -> list[str]:
    """The text's content words in order (repeats kept): see the module docstring."""
    normal = unicodedata.normalize("NFC", text).casefold()
    return [
        word
        for word in _WORD.findall(normal)
        if len(word) >= MIN_WORD_CHARS and word.replace("ё", "е") not in _stop_words(word)
    ]


def stem(word: str) -> str:
    """The word's stem, ё read as е: its forms share it (``truncate``)."""
    return truncate(word).replace("ё", "е")


def truncate(word: str) -> str:
    """The word's first ``STEM_CHARS`` characters; a shorter word loses its last letter (its
    ending: пицца/пиццу -> пицц), down to ``MIN_WORD_CHARS``."""
    return word[: min(STEM_CHARS, max(MIN_WORD_CHARS, len(word) - 1))]


def content_stems(text: str) -> set[str]:
    """The stems of the text's content words."""
    return {stem(word) for word in content_words(text)}


def share_content_word(text: str, others: list[str] | tuple[str, ...]) -> bool:
    """True when ``text`` and any of ``others`` have a content word (a stem) in common."""
    stems = content_stems(text)
    return bool(stems) and any(stems & content_stems(other) for other in others)
