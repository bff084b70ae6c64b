"""Texts of the results feedback message ("you said, we did") and the public results page.

The feedback message goes by SMS too, so it is short, plain GSM-7 where the language allows
(no typographic dashes or ellipses in sv/en), and discreet: it names who is asking (the survey's
`sender`) and never the service the person is a client of.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from flows.model import base_language

__all__ = ["FEEDBACK", "PAGE", "feedback_texts", "page_texts"]

FEEDBACK: Final[Mapping[str, Mapping[str, str]]] = {
    "sv": {
        "hello_from": "Hej från {sender}!",
        "hello": "Hej!",
        "answered": "{n} personer svarade på vår enkät. Tack!",
        "too_few": "För få svarade för att vi ska kunna visa resultat.",
        "hidden": "Resultaten bygger på för få svar för att visas.",
        "one": '{x} av 10 svarade "{choice}" på "{question}".',
        "many": '{x} av 10 svarade positivt på "{question}".',
        "we_will": "Det här gör vi: {text}",
        "plan": "({plan})",
        "link": "Läs mer: {link}",
    },
    "en": {
        "hello_from": "Hello from {sender}!",
        "hello": "Hello!",
        "answered": "{n} people answered our survey. Thank you!",
        "too_few": "Too few answered for us to show results.",
        "hidden": "The results rest on too few answers to be shown.",
        "one": '{x} in 10 answered "{choice}" to "{question}".',
        "many": '{x} in 10 answered positively to "{question}".',
        "we_will": "What we will do: {text}",
        "plan": "({plan})",
        "link": "Read more: {link}",
    },
    "ar": {
        "hello_from": "مرحباً من {sender}!",
        "hello": "مرحباً!",
        "answered": "أجاب {n} شخصاً على استبياننا. شكراً لك!",
        "too_few": "عدد المجيبين قليل جداً لعرض النتائج.",
        "hidden": "النتائج مبنية على عدد قليل جداً من الإجابات فلا يمكن عرضها.",
        "one": '{x} من كل 10 أجابوا "{choice}" على "{question}".',
        "many": '{x} من كل 10 أجابوا بشكل إيجابي على "{question}".',
        "we_will": "ما سنفعله: {text}",
        "plan": "({plan})",
        "link": "اقرأ المزيد: {link}",
    },
}

PAGE: Final[Mapping[str, Mapping[str, str]]] = {
    "sv": {
        "title": "Resultat: {title}",
        "from": "Från {sender}",
        "participation": "Deltagande",
        "invited": "Tillfrågade",
        "completed": "Svarade",
        "response_rate": "Svarsfrekvens",
        "we_will": "Det här gör vi",
        "plan": "Kopplat till: {plan}",
        "answers": "Svar",
        "share": "Andel",
        "count": "Antal",
        "choice": "Svarsalternativ",
        "share_positive": "{pct} svarade positivt.",
        "mean": "Medelvärde {mean}.",
        "n": "{n} svar.",
        "hidden_question": "För få svar för att visa resultatet.",
        "hidden_cell": "visas inte",
        "too_few": "För få svarade för att vi ska kunna visa resultat.",
        "k_rule": (
            "Vi visar aldrig en siffra som bygger på färre än {k} personer, så att ingen kan "
            "pekas ut. Därför saknas ibland en siffra."
        ),
        "not_found_title": "Resultaten finns inte än",
        "not_found": (
            "Resultaten visas när enkäten har avslutats. Välkommen tillbaka senare. "
            "Kontrollera också att länken är rätt."
        ),
        "chart": "Diagram: {question}",
        "chart_desc": "Liggande staplar med andelen som valde varje svarsalternativ.",
        "other_lang": "In English",
        "other_lang_code": "en",
        "unknown": "uppgift saknas",
    },
    "en": {
        "title": "Results: {title}",
        "from": "From {sender}",
        "participation": "Participation",
        "invited": "Asked",
        "completed": "Answered",
        "response_rate": "Response rate",
        "we_will": "What we will do",
        "plan": "Linked to: {plan}",
        "answers": "Answers",
        "share": "Share",
        "count": "Count",
        "choice": "Answer option",
        "share_positive": "{pct} answered positively.",
        "mean": "Mean {mean}.",
        "n": "{n} answers.",
        "hidden_question": "Too few answers to show the result.",
        "hidden_cell": "not shown",
        "too_few": "Too few answered for us to show results.",
        "k_rule": (
            "We never show a figure that rests on fewer than {k} people, so that nobody can be "
            "singled out. That is why a figure is sometimes missing."
        ),
        "not_found_title": "The results are not here yet",
        "not_found": (
            "Results are shown when the survey has closed. Please come back later, and check "
            "that the link is right."
        ),
        "chart": "Chart: {question}",
        "chart_desc": "Horizontal bars with the share who chose each answer option.",
        "other_lang": "På svenska",
        "other_lang_code": "sv",
        "unknown": "not known",
    },
}


def feedback_texts(lang: str) -> Mapping[str, str]:
    """The feedback message texts in `lang` (its base language, else English)."""
    return FEEDBACK.get(lang) or FEEDBACK.get(base_language(lang)) or FEEDBACK["en"]


def page_texts(lang: str) -> Mapping[str, str]:
    """The public page texts: Swedish or English."""
    return PAGE.get(base_language(lang), PAGE["en"])
