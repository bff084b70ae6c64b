# ruff: noqa: E501 -- the spec example and the tables of broken files stay one case per line
from __future__ import annotations

import dataclasses
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.survey_files import load_paths, load_survey_file
from flows.durations import format_duration, parse_duration
from flows.loader import (
    LoadResult,
    Problem,
    SurveyFileError,
    checksum,
    load_survey_text,
    survey_definition,
    survey_from_definition,
)
from flows.model import Participation, QuestionType, Survey

# The example from the spec, verbatim: it must stay valid.
SPEC_EXAMPLE = """\
id = "uppfoljning-insats"            # unique; a-z, 0-9 and '-'
version = 1
languages = ["sv", "en", "ar"]       # the first is the default
title = { sv = "...", en = "...", ar = "..." }
intro = { sv = "...", en = "...", ar = "..." }
thanks = { sv = "...", en = "...", ar = "..." }
anonymous = true
participation = "konsultation"       # information | konsultation | dialog | inflytande | medbestammande
keywords = ["UPPFOLJNING"]           # optional: a message that is only this word starts the survey
expires_after = "7d"                 # durations: s, m, h, d
max_retries = 2                      # re-prompts before an optional question is skipped

[[questions]]
id = "helped"
type = "select_one"                  # message | select_one | select_many | numeric | open | date | scale
text = { sv = "Har insatsen hjälpt dig?", en = "Has the support helped you?", ar = "..." }
choices = [
  { id = "yes", text = { sv = "Ja", en = "Yes", ar = "..." } },
  { id = "partly", text = { sv = "Delvis", en = "Partly", ar = "..." } },
  { id = "no", text = { sv = "Nej", en = "No", ar = "..." } },
]
positive = ["yes"]                   # counted as "share positive" in results

[[questions]]
id = "improve"
type = "open"
required = false
max_length = 500
show_if = "helped in ['partly', 'no']"
text = { sv = "...", en = "...", ar = "..." }

[[questions]]
id = "score"
type = "numeric"
min = 1
max = 10
text = { sv = "…", en = "…", ar = "…" }

[[questions]]
id = "mood"
type = "scale"                       # 1–5; style "smileys" shows 😞 🙁 😐 🙂 😀
style = "smileys"
text = { sv = "…", en = "…", ar = "…" }
"""

LONG_SV = "Har insatsen hjälpt dig att må bättre och klara vardagen? " * 9
LONG_AR = "هل ساعدك الدعم على تحسين وضعك؟ " * 6


def edit(*changes: tuple[str, str]) -> str:
    """The spec example with each `old` (which must occur exactly once) replaced by `new`."""
    text = SPEC_EXAMPLE
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def test_spec_example_loads() -> None:
    survey = load_survey_text(SPEC_EXAMPLE, "spec.toml")
    assert survey.id == "uppfoljning-insats"
    assert survey.version == 1
    assert survey.languages == ("sv", "en", "ar")
    assert survey.default_language == "sv"
    assert survey.participation is Participation.KONSULTATION
    assert survey.keywords == ("UPPFOLJNING",)
    assert survey.expires_after == 7 * 86400
    assert survey.max_retries == 2
    assert survey.source == "spec.toml"
    assert [q.id for q in survey.questions] == ["helped", "improve", "score", "mood"]
    assert [q.line for q in survey.questions] == [13, 24, 32, 39]
    helped, improve, score, mood = survey.questions
    assert helped.type is QuestionType.SELECT_ONE
    assert [c.id for c in helped.choices] == ["yes", "partly", "no"]
    assert helped.positive == ("yes",)
    assert helped.text["en"] == "Has the support helped you?"
    assert helped.required
    assert not improve.required
    assert improve.max_length == 500
    assert improve.show_if == "helped in ['partly', 'no']"
    assert (score.min, score.max) == (1, 10)
    assert mood.type is QuestionType.SCALE
    assert mood.style == "smileys"
    assert mood.scale_range == (1, 5)


def test_extensions_load() -> None:
    text = edit(
        (
            "max_retries = 2",
            'max_retries = 2\nsender = { sv = "Malmö stad", en = "City of Malmö", ar = "مدينة مالمو", sv-x-lattlast = "Malmö stad" }',
        ),
        (
            "anonymous = true",
            'anonymous = false\ninvitation = { sv = "Hej", en = "Hi", ar = "مرحبا", sv-x-lattlast = "Hej" }\nresults_use = { sv = "På webben", en = "On the web", ar = "على الموقع", sv-x-lattlast = "På webben" }',
        ),
        ('positive = ["yes"]', 'positive = ["yes"]\ndont_know = ["partly"]\nbreakdown = "gender"'),
        ('style = "smileys"', 'style = "numbers"\nmin = 0\nmax = 10'),
        ('languages = ["sv", "en", "ar"]', 'languages = ["sv", "en", "ar", "sv-x-lattlast"]'),
        ('ar = "..." }\nthanks', 'ar = "...", sv-x-lattlast = "Hej!" }\nthanks'),
    )
    text = text.replace('ar = "..." }', 'ar = "...", sv-x-lattlast = "Lätt" }')
    text = text.replace('ar = "…" }', 'ar = "…", sv-x-lattlast = "Lätt" }')
    text = text.replace('ar = "..." } },', 'ar = "...", sv-x-lattlast = "Lätt" } },')
    text = text.replace(
        'helped you?", ar = "..." }', 'helped you?", ar = "...", sv-x-lattlast = "Fick du hjälp?" }'
    )
    survey = load_survey_text(text)
    assert survey.languages[-1] == "sv-x-lattlast"
    assert survey.sender["ar"] == "مدينة مالمو"
    assert survey.invitation["en"] == "Hi"
    assert survey.results_use["sv"] == "På webben"
    assert not survey.anonymous
    helped = survey.questions[0]
    assert helped.dont_know == ("partly",)
    assert helped.breakdown == "gender"
    assert survey.questions[3].scale_range == (0, 10)
    assert survey.questions[3].style == "numbers"


def test_a_survey_is_public_only_when_it_says_so() -> None:
    assert not load_survey_text(SPEC_EXAMPLE).public
    assert not load_survey_text(SPEC_EXAMPLE).minors
    public = load_survey_text(edit(("anonymous = true", "anonymous = true\npublic = true")))
    assert public.public and not public.minors
    children = load_survey_text(edit(("anonymous = true", "anonymous = true\nminors = true")))
    assert children.minors and not children.public


def test_choices_as_array_of_tables_and_multiline_strings() -> None:
    text = """\
id = "tables"
version = 2
languages = ["sv"]
title = { sv = "T" }
intro.sv = \"\"\"
Hej!
id = "not-a-key"
[[questions]]
\"\"\"
thanks = { sv = "Tack" }

[[questions]]
id = "pick"
type = "select_many"
text = { sv = "Välj" }

[[questions.choices]]
id = "a"
text = { sv = "A" }

[[questions.choices]]
id = "a"
text = { sv = "B" }
"""
    with pytest.raises(SurveyFileError) as info:
        load_survey_text(text, "t.toml")
    assert [str(p) for p in info.value.problems] == [
        "t.toml:22: question 'pick': choice id 'a' is used twice (first on line 18)"
    ]
    survey = load_survey_text(
        text.replace('id = "a"\ntext = { sv = "B" }', 'id = "b"\ntext = { sv = "B" }')
    )
    assert survey.version == 2
    assert survey.intro["sv"].startswith("Hej!")
    assert survey.questions[0].line == 12
    assert [c.id for c in survey.questions[0].choices] == ["a", "b"]


BROKEN: list[tuple[str, str, str]] = [
    # (case, text, expected "line: message" substring)
    (
        "toml syntax",
        edit(("max_length = 500", "max_length = = 500")),
        "28: TOML syntax: Invalid value",
    ),
    ("toml syntax at end", SPEC_EXAMPLE + "[[questions", "44: TOML syntax"),
    (
        "unknown top-level key",
        edit(("anonymous = true", "anonymus = true")),
        "7: unknown key 'anonymus' in the survey (did you mean 'anonymous'?)",
    ),
    (
        "unknown question key",
        edit(("max_length = 500", "maxlength = 500")),
        "28: unknown key 'maxlength' in question 'improve'",
    ),
    (
        "unknown choice key",
        edit(('{ id = "no", text', '{ id = "no", label = "x", text')),
        "20: unknown key 'label' in question 'helped', choice 3",
    ),
    (
        "wrong type top",
        edit(("version = 1", 'version = "1"')),
        "2: version must be a whole number, not a text",
    ),
    (
        "wrong type bool",
        edit(("anonymous = true", 'anonymous = "yes"')),
        "7: anonymous must be true or false, not a text",
    ),
    (
        "wrong type question",
        edit(("required = false", 'required = "no"')),
        "27: question 'improve': required must be true or false",
    ),
    (
        "wrong type int is bool",
        edit(("min = 1", "min = true")),
        "35: question 'score': min must be a whole number, not true/false",
    ),
    (
        "wrong type text",
        edit(('title = { sv = "...", en = "...", ar = "..." }', 'title = "Titel"')),
        "4: title must be a table of texts per language",
    ),
    (
        "wrong type keywords",
        edit(('keywords = ["UPPFOLJNING"]', 'keywords = "UPPFOLJNING"')),
        "9: keywords must be a list of texts",
    ),
    (
        "wrong type choices",
        edit(('{ id = "no", text = { sv = "Nej", en = "No", ar = "..." } },', '"no",')),
        "17: question 'helped': choices must be a list",
    ),
    (
        "missing top-level key",
        edit(('intro = { sv = "...", en = "...", ar = "..." }\n', "")),
        "1: missing 'intro'",
    ),
    (
        "missing question key",
        edit(('type = "numeric"\n', "")),
        "32: question 'score': missing 'type'",
    ),
    (
        "missing question text",
        edit(
            (
                'text = { sv = "...", en = "...", ar = "..." }\n\n[[questions]]\nid = "score"',
                '\n[[questions]]\nid = "score"',
            )
        ),
        "24: question 'improve': missing 'text'",
    ),
    (
        "missing choice id",
        edit(('{ id = "no", text', "{ text")),
        "question 'helped': choice 3 needs an id",
    ),
    (
        "bad survey id",
        edit(('id = "uppfoljning-insats"', 'id = "Uppföljning insats"')),
        "1: id 'Uppföljning insats' must be lowercase",
    ),
    (
        "bad question id",
        edit(('id = "improve"', 'id = "Improve"')),
        "25: question id 'Improve' must be lowercase",
    ),
    (
        "bad choice id",
        edit(('{ id = "partly"', '{ id = "Partly"')),
        "19: question 'helped': choice id 'Partly' must be lowercase",
    ),
    (
        "unknown question type",
        edit(('type = "open"', 'type = "text"')),
        "26: question 'improve': unknown type 'text'",
    ),
    (
        "unknown participation",
        edit(('participation = "konsultation"', 'participation = "samrad"')),
        "8: unknown participation 'samrad'",
    ),
    (
        "duplicate question id",
        edit(('id = "score"', 'id = "improve"')),
        "33: question id 'improve' is used twice (first on line 24)",
    ),
    (
        "duplicate choice id",
        edit(('{ id = "partly"', '{ id = "yes"')),
        "19: question 'helped': choice id 'yes' is used twice (first on line 18)",
    ),
    (
        "select without choices",
        edit(
            (
                'choices = [\n  { id = "yes", text = { sv = "Ja", en = "Yes", ar = "..." } },\n  { id = "partly", text = { sv = "Delvis", en = "Partly", ar = "..." } },\n  { id = "no", text = { sv = "Nej", en = "No", ar = "..." } },\n]\npositive = ["yes"]',
                "",
            )
        ),
        "13: question 'helped': select_one needs choices",
    ),
    (
        "non-select with choices",
        edit(
            (
                "max_length = 500\n",
                'max_length = 500\nchoices = [{ id = "a", text = { sv = "a", en = "a", ar = "a" } }]\n',
            )
        ),
        "29: question 'improve': choices do not apply to open",
    ),
    (
        "positive not a choice",
        edit(('positive = ["yes"]', 'positive = ["ja"]')),
        "22: question 'helped': positive 'ja' is not one of its choices (yes, partly, no)",
    ),
    (
        "dont_know not a choice",
        edit(('positive = ["yes"]', 'positive = ["yes"]\ndont_know = ["vet_ej"]')),
        "23: question 'helped': dont_know 'vet_ej' is not one of its choices",
    ),
    (
        "positive and dont_know",
        edit(('positive = ["yes"]', 'positive = ["yes"]\ndont_know = ["yes"]')),
        "23: question 'helped': choice 'yes' is both positive and dont_know",
    ),
    (
        "min > max",
        edit(("max = 10", "max = 0")),
        "35: question 'score': min (1) is greater than max (0)",
    ),
    (
        "min > max on scale",
        edit(('style = "smileys"', 'style = "numbers"\nmin = 5\nmax = 1')),
        "43: question 'mood': min (5) is greater than max (1)",
    ),
    (
        "min on open",
        edit(("max_length = 500", "max_length = 500\nmin = 3")),
        "29: question 'improve': 'min' does not apply to open",
    ),
    (
        "smileys need 5 steps",
        edit(('style = "smileys"', 'style = "smileys"\nmax = 7')),
        "42: question 'mood': the smileys style needs exactly 5 steps",
    ),
    (
        "unknown style",
        edit(('style = "smileys"', 'style = "stars"')),
        "42: question 'mood': unknown style 'stars'",
    ),
    (
        "unknown breakdown",
        edit(('positive = ["yes"]', 'positive = ["yes"]\nbreakdown = "kon"')),
        "23: question 'helped': unknown breakdown 'kon'",
    ),
    (
        "breakdown on open",
        edit(("max_length = 500", 'max_length = 500\nbreakdown = "gender"')),
        "29: question 'improve': breakdown 'gender' needs a select_one question",
    ),
    (
        "show_if syntax",
        edit(
            ("show_if = \"helped in ['partly', 'no']\"", "show_if = \"helped in ['partly' 'no']\"")
        ),
        "29: question 'improve': show_if: expected ',' or ']' at column 21: near ''no''",
    ),
    (
        "show_if unknown name",
        edit(('show_if = "helped in', 'show_if = "helpd in')),
        "29: question 'improve': show_if refers to unknown question 'helpd'",
    ),
    (
        "show_if later question",
        edit(("show_if = \"helped in ['partly', 'no']\"", 'show_if = "mood >= 3"')),
        "29: question 'improve': show_if refers to 'mood', which is asked after this question",
    ),
    (
        "show_if itself",
        edit(("show_if = \"helped in ['partly', 'no']\"", "show_if = \"improve == 'x'\"")),
        "29: question 'improve': show_if refers to the question itself",
    ),
    (
        "missing translation",
        edit(('en = "Has the support helped you?", ', "")),
        "16: question 'helped': text is missing the translation for 'en'",
    ),
    (
        "missing choice translation",
        edit(('{ sv = "Delvis", en = "Partly", ar = "..." }', '{ sv = "Delvis", ar = "..." }')),
        "19: question 'helped': choice 'partly' text is missing the translation for 'en'",
    ),
    (
        "missing top translation",
        edit(('thanks = { sv = "...", en = "...", ar = "..." }', 'thanks = { sv = "..." }')),
        "6: thanks is missing the translation for 'en', 'ar'",
    ),
    (
        "text in unknown language",
        edit(
            (
                'thanks = { sv = "...", en = "...", ar = "..." }',
                'thanks = { sv = "...", en = "...", ar = "...", fi = "..." }',
            )
        ),
        "6: thanks has a text in 'fi', which is not in languages",
    ),
    (
        "empty text",
        edit(('thanks = { sv = "...",', 'thanks = { sv = " ",')),
        "6: thanks.sv is empty",
    ),
    (
        "bad language code",
        edit(('languages = ["sv", "en", "ar"]', 'languages = ["sv", "en", "ar", "Svenska"]')),
        "3: language 'Svenska' must be a code",
    ),
    (
        "duplicate language",
        edit(('languages = ["sv", "en", "ar"]', 'languages = ["sv", "en", "ar", "en"]')),
        "3: language 'en' is listed twice",
    ),
    (
        "no languages",
        edit(('languages = ["sv", "en", "ar"]', "languages = []")),
        "3: languages must be a non-empty list",
    ),
    (
        "bad duration",
        edit(('expires_after = "7d"', 'expires_after = "7 days"')),
        "10: expires_after: '7 days' is not a duration",
    ),
    (
        "zero duration",
        edit(('expires_after = "7d"', 'expires_after = "0s"')),
        "10: expires_after: '0s': a duration must be longer than zero",
    ),
    (
        "max_retries range",
        edit(("max_retries = 2", "max_retries = 99")),
        "11: max_retries must be between 0 and 10",
    ),
    (
        "keyword listed twice",
        edit(('keywords = ["UPPFOLJNING"]', 'keywords = ["UPPFOLJNING", "Uppföljning"]')),
        "9: keyword 'uppfoljning' is listed twice",
    ),
    (
        "carrier keyword",
        edit(('keywords = ["UPPFOLJNING"]', 'keywords = ["YES"]')),
        "9: keyword 'YES' is a reserved command",
    ),
    (
        "reserved keyword",
        edit(('keywords = ["UPPFOLJNING"]', 'keywords = ["STOPP"]')),
        "9: keyword 'STOPP' is a reserved command",
    ),
    (
        "keyword with space",
        edit(('keywords = ["UPPFOLJNING"]', 'keywords = ["TWO WORDS"]')),
        "9: keyword 'TWO WORDS' must be one word",
    ),
    (
        "no questions",
        SPEC_EXAMPLE.split("[[questions]]")[0] + "questions = []\n",
        "13: a survey needs at least one question",
    ),
    (
        "sms too long sv",
        edit(('text = { sv = "Har insatsen hjälpt dig?"', f'text = {{ sv = "{LONG_SV}"')),
        "16: question 'helped' in 'sv' is 4 SMS segments as sent",
    ),
    (
        "sms too long ar",
        edit(('helped you?", ar = "..." }', f'helped you?", ar = "{LONG_AR}" }}')),
        "16: question 'helped' in 'ar' is 4 SMS segments as sent",
    ),
    (
        "intro too long",
        edit(('intro = { sv = "..."', f'intro = {{ sv = "{LONG_SV}"')),
        "5: intro in 'sv' is 4 SMS segments",
    ),
    (
        "intro with results_use too long",
        edit(
            (
                "max_retries = 2",
                f'max_retries = 2\nresults_use = {{ sv = "{LONG_SV[:300]}", en = "x", ar = "x" }}',
            ),
            ('intro = { sv = "..."', f'intro = {{ sv = "{LONG_SV[:200]}"'),
        ),
        "5: intro with results_use in 'sv' is 4 SMS segments",
    ),
    (
        "invitation too long",
        edit(
            (
                "max_retries = 2",
                f'max_retries = 2\ninvitation = {{ sv = "x", en = "x", ar = "{LONG_AR * 2}" }}',
            )
        ),
        "12: invitation in 'ar' is 6 SMS segments",
    ),
    (
        "select_many hint counts",
        edit(
            ('type = "select_one"', 'type = "select_many"'),
            ('text = { sv = "Har insatsen hjälpt dig?"', f'text = {{ sv = "{LONG_SV[:420]}"'),
        ),
        "16: question 'helped' in 'sv' is 4 SMS segments as sent",
    ),
    (
        "keywords for a language the survey does not have",
        edit(
            ('keywords = ["UPPFOLJNING"]', 'keywords = { sv = ["UPPFOLJNING"], fi = ["SEURANTA"] }')
        ),
        "keywords: 'fi' is not one of the survey's languages",
    ),
    (
        "keywords per language must be lists",
        edit(('keywords = ["UPPFOLJNING"]', 'keywords = { sv = "UPPFOLJNING" }')),
        "keywords.sv must be a list of texts",
    ),
    (
        "a children's survey is never public",
        edit(("anonymous = true", "anonymous = true\nminors = true\npublic = true")),
        "broken.toml:9: a survey for children (minors = true) can never be public",
    ),
    (
        "public is true or false",
        edit(("anonymous = true", 'anonymous = true\npublic = "yes"')),
        "public must be true or false",
    ),
    (
        "minors is true or false",
        edit(("anonymous = true", "anonymous = true\nminors = 1")),
        "minors must be true or false",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_file(text: str, expected: str) -> None:
    with pytest.raises(SurveyFileError) as info:
        load_survey_text(text, "broken.toml")
    problems = [str(p) for p in info.value.problems]
    assert any(p.startswith("broken.toml:") and expected in p for p in problems), problems
    assert str(info.value) == "\n".join(problems)


def test_all_problems_are_collected() -> None:
    text = edit(
        ("version = 1", 'version = "one"'),
        ('participation = "konsultation"', 'participation = "x"'),
        ('type = "open"', 'type = "essay"'),
        ("max = 10", "max = 0"),
        ('style = "smileys"', 'style = "stars"'),
    )
    with pytest.raises(SurveyFileError) as info:
        load_survey_text(text, "many.toml")
    assert [p.line for p in info.value.problems] == [2, 8, 26, 35, 42]


def test_problem_str() -> None:
    assert str(Problem("a.toml", 3, "bad")) == "a.toml:3: bad"


def test_definition_round_trip() -> None:
    definition = survey_definition(SPEC_EXAMPLE)
    assert definition["id"] == "uppfoljning-insats"
    assert definition["questions"][0]["choices"][1]["id"] == "partly"
    rehydrated = survey_from_definition(definition, "stored")
    loaded = load_survey_text(SPEC_EXAMPLE, "stored")
    assert rehydrated == dataclasses.replace(
        loaded, questions=tuple(dataclasses.replace(q, line=0) for q in loaded.questions)
    )


def test_definition_is_checked_again() -> None:
    definition = survey_definition(SPEC_EXAMPLE)
    definition["questions"][1]["show_if"] = "nope =="
    with pytest.raises(SurveyFileError) as info:
        survey_from_definition(definition)
    assert [str(p) for p in info.value.problems] == [
        "<definition>:0: question 'improve': show_if: expected a value (a name, a quoted text, "
        "a number or a list) at column 8: at the end of the expression"
    ]


def test_definition_skips_authoring_rules() -> None:
    """A stored version in use must load even if SMS limits or command words change later."""
    text = edit(
        ('keywords = ["UPPFOLJNING"]', 'keywords = ["HJÄLP"]'),
        ('text = { sv = "Har insatsen hjälpt dig?"', f'text = {{ sv = "{LONG_SV}"'),
    )
    with pytest.raises(SurveyFileError):
        load_survey_text(text)
    survey = survey_from_definition(survey_definition(text))
    assert survey.keywords == ("HJÄLP",)


def test_definition_of_broken_toml() -> None:
    with pytest.raises(SurveyFileError):
        survey_definition("x = ")


def test_checksum() -> None:
    assert checksum("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert checksum(SPEC_EXAMPLE) != checksum(SPEC_EXAMPLE + " ")


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.toml", SPEC_EXAMPLE)
    assert load_survey_file(path).source == str(path)
    with pytest.raises(SurveyFileError, match="cannot read"):
        load_survey_file(tmp_path / "missing.toml")
    (tmp_path / "latin1.toml").write_bytes("title = 'Malmö'".encode("latin-1"))
    with pytest.raises(SurveyFileError, match="not UTF-8"):
        load_survey_file(tmp_path / "latin1.toml")


def test_load_paths_across_files(tmp_path: Path) -> None:
    _write(tmp_path, "a.toml", SPEC_EXAMPLE)
    _write(tmp_path, "b.toml", SPEC_EXAMPLE)  # same id and version
    _write(tmp_path, "c.toml", SPEC_EXAMPLE.replace('id = "uppfoljning-insats"', 'id = "other"'))
    _write(tmp_path, "d.toml", SPEC_EXAMPLE.replace("version = 1", "version = 2"))
    _write(tmp_path, "e.toml", "not toml at all")
    _write(tmp_path, "notes.txt", "ignored")
    (tmp_path / "sub").mkdir()
    single = _write(
        tmp_path / "sub",
        "f.toml",
        SPEC_EXAMPLE.replace('id = "uppfoljning-insats"', 'id = "f"').replace(
            '"UPPFOLJNING"', '"FFF"'
        ),
    )
    result = load_paths([tmp_path, single, tmp_path / "nowhere", tmp_path / "a.toml"])
    assert isinstance(result, LoadResult)
    assert [(s.id, s.version) for s in result.surveys] == [
        ("uppfoljning-insats", 1),
        ("uppfoljning-insats", 2),
        ("f", 1),
    ]
    messages = [str(p) for p in result.problems]
    assert messages[0] == (
        f"{tmp_path / 'b.toml'}:2: survey 'uppfoljning-insats' version 1 is also defined in "
        f"{tmp_path / 'a.toml'}; raise the version or change the id"
    )
    assert messages[1] == (
        f"{tmp_path / 'c.toml'}:9: keyword 'UPPFOLJNING' is already used by survey "
        f"'uppfoljning-insats' ({tmp_path / 'a.toml'})"
    )
    assert messages[2].startswith(f"{tmp_path / 'e.toml'}:1: TOML syntax")
    assert messages[3] == f"{tmp_path / 'nowhere'}:0: no such file or folder"
    assert len(messages) == 4


DURATIONS = [
    ("90s", 90),
    ("15m", 900),
    ("2h", 7200),
    ("7d", 604800),
    ("1d12h", 129600),
    ("1h30m", 5400),
    (" 2H ", 7200),
    ("1d1h1m1s", 90061),
]


@pytest.mark.parametrize(("text", "seconds"), DURATIONS)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not a duration"),
        ("7", "is not a duration"),
        ("7 d", "is not a duration"),
        ("d", "is not a duration"),
        ("1.5h", "is not a duration"),
        ("-1d", "is not a duration"),
        ("1h1d", "largest first"),
        ("1h2h", "each unit once"),
        ("0m", "longer than zero"),
    ],
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (90, "1m30s"), (604800, "7d"), (129600, "1d12h")]
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text
    if seconds:
        assert parse_duration(text) == seconds


# --- fuzzing: bad input gives problems, never tracebacks -------------------------------------


def _check_never_crashes(text: str) -> None:
    try:
        survey = load_survey_text(text, "fuzz.toml")
    except SurveyFileError as err:
        assert err.problems
        assert all(p.path == "fuzz.toml" and p.line >= 0 and p.message for p in err.problems)
    else:
        assert isinstance(survey, Survey)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_garbage_text(text: str) -> None:
    _check_never_crashes(text)


@settings(max_examples=300, deadline=None)
@given(
    cuts=st.lists(st.tuples(st.integers(0, len(SPEC_EXAMPLE)), st.integers(0, 40)), max_size=4),
    insert=st.text(alphabet=string.printable + "åäö😀", max_size=8),
)
def test_mangled_example(cuts: list[tuple[int, int]], insert: str) -> None:
    text = SPEC_EXAMPLE
    for start, length in cuts:
        text = text[:start] + insert + text[start + length :]
    _check_never_crashes(text)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


_SPEC_PATHS = _paths(survey_definition(SPEC_EXAMPLE))[1:]


@settings(max_examples=300, deadline=None)
@given(where=st.sampled_from(_SPEC_PATHS), value=_JSON)
def test_definition_with_any_value_anywhere(where: tuple[Any, ...], value: object) -> None:
    definition = survey_definition(SPEC_EXAMPLE)
    target: Any = definition
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = value
    try:
        survey_from_definition(definition, "fuzz")
    except SurveyFileError as err:
        assert err.problems


def test_keywords_per_language_name_the_language() -> None:
    text = SPEC_EXAMPLE.replace(
        'keywords = ["UPPFOLJNING"]',
        'keywords = { sv = ["UPPFOLJNING"], en = ["FOLLOWUP"], ar = ["متابعة"] }',
    )
    survey = load_survey_text(text, "spec.toml")
    assert survey.keywords == ("UPPFOLJNING", "FOLLOWUP", "متابعة")
    assert dict(survey.keyword_languages) == {
        "uppfoljning": "sv",
        "followup": "en",
        "متابعة": "ar",
    }
