"""Texts of results: the feedback message ("you said, we did"), the public results page, the
staff outputs (terminal tables, XLSX) and the labels of breakdown groups, in sv, en and ar.

The feedback message goes by SMS too, so it is short, plain GSM-7 where the language allows
(no typographic dashes or ellipses in sv/en), and discreet: it names who is asking (the survey's
`sender`) and never the service the person is a client of.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from flows.model import base_language

__all__ = [
    "FEEDBACK",
    "GROUPS",
    "PAGE",
    "STAFF",
    "STAFF_LANGUAGES",
    "feedback_texts",
    "group_texts",
    "page_texts",
    "staff_texts",
    "target_group_name",
]

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
        "languages": "Språk",
        "participation": "Deltagande",
        "invited": "Tillfrågade",
        "completed": "Svarade",
        "response_rate": "Svarsfrekvens",
        "we_will": "Det här gör vi",
        "plan": "Kopplat till: {plan}",
        "share": "Andel",
        "choice": "Svarsalternativ",
        "share_positive": "{pct} svarade positivt.",
        "mean": "Medelvärde {mean}.",
        "n": "{n} svar.",
        "hidden_question": "För få svar för att visa resultatet.",
        "hidden_cell": "visas inte",
        "too_few": "För få svarade för att vi ska kunna visa resultat.",
        "k_rule_groups": (
            "Vi visar bara resultat för en grupp där minst {k} personer svarade, så att ingen kan "
            "pekas ut. Därför saknas ibland en siffra."
        ),
        "k_rule_cells": (
            "Vi visar aldrig en siffra som bygger på färre än {k} personer, så att ingen kan "
            "pekas ut. Därför saknas ibland en siffra."
        ),
        "not_found_title": "Resultaten finns inte än",
        "not_found": (
            "Resultaten visas när enkäten har avslutats. Välkommen tillbaka senare. "
            "Kontrollera också att länken är rätt."
        ),
        "chart": "Diagram: {question}",
    },
    "en": {
        "title": "Results: {title}",
        "from": "From {sender}",
        "languages": "Languages",
        "participation": "Participation",
        "invited": "Asked",
        "completed": "Answered",
        "response_rate": "Response rate",
        "we_will": "What we will do",
        "plan": "Linked to: {plan}",
        "share": "Share",
        "choice": "Answer option",
        "share_positive": "{pct} answered positively.",
        "mean": "Mean {mean}.",
        "n": "{n} answers.",
        "hidden_question": "Too few answers to show the result.",
        "hidden_cell": "not shown",
        "too_few": "Too few answered for us to show results.",
        "k_rule_groups": (
            "We only show results for a group in which at least {k} people answered, so that "
            "nobody can be singled out. That is why a figure is sometimes missing."
        ),
        "k_rule_cells": (
            "We never show a figure that rests on fewer than {k} people, so that nobody can be "
            "singled out. That is why a figure is sometimes missing."
        ),
        "not_found_title": "The results are not here yet",
        "not_found": (
            "Results are shown when the survey has closed. Please come back later, and check "
            "that the link is right."
        ),
        "chart": "Chart: {question}",
    },
    "ar": {
        "title": "النتائج: {title}",
        "from": "من {sender}",
        "languages": "اللغات",
        "participation": "المشاركة",
        "invited": "المدعوون",
        "completed": "أجابوا",
        "response_rate": "نسبة الاستجابة",
        "we_will": "ما سنفعله",
        "plan": "مرتبط بـ: {plan}",
        "share": "النسبة",
        "choice": "خيار الإجابة",
        "share_positive": "أجاب {pct} بشكل إيجابي.",
        "mean": "المتوسط {mean}.",
        "n": "عدد الإجابات: {n}.",
        "hidden_question": "عدد الإجابات قليل جداً لعرض النتيجة.",
        "hidden_cell": "لا يُعرض",
        "too_few": "عدد المجيبين قليل جداً لعرض النتائج.",
        "k_rule_groups": (
            "لا نعرض النتائج إلا لمجموعة أجاب فيها {k} أشخاص على الأقل، حتى لا يمكن التعرف على "
            "أحد. لذلك يغيب رقم أحياناً."
        ),
        "k_rule_cells": (
            "لا نعرض أبداً رقماً يستند إلى أقل من {k} أشخاص، حتى لا يمكن التعرف على أحد. لذلك "
            "يغيب رقم أحياناً."
        ),
        "not_found_title": "النتائج غير متوفرة بعد",
        "not_found": (
            "تُعرض النتائج بعد انتهاء الاستبيان. يرجى العودة لاحقاً، والتأكد من صحة الرابط."
        ),
        "chart": "رسم بياني: {question}",
    },
}


def feedback_texts(lang: str) -> Mapping[str, str]:
    """The feedback message texts in `lang` (its base language, else English)."""
    return FEEDBACK.get(lang) or FEEDBACK.get(base_language(lang)) or FEEDBACK["en"]


def page_texts(lang: str) -> Mapping[str, str]:
    """The public page texts in `lang` (its base language, else English)."""
    return PAGE.get(lang) or PAGE.get(base_language(lang)) or PAGE["en"]


STAFF: Final[Mapping[str, Mapping[str, str]]] = {
    "sv": {
        "summary": "Sammanfattning",
        "answers": "Svar",
        "about": "Om svaren",
        "question": "Fråga",
        "row": "Svarsalternativ",
        "count": "Antal",
        "share": "Andel",
        "share_positive": "Andel positiva",
        "mean": "Medelvärde",
        "median": "Median",
        "participation": "Deltagande",
        "invited": "Inbjudna",
        "started": "Påbörjade",
        "completed": "Slutförda",
        "opted_out": "Avböjda",
        "response_rate": "Svarsfrekvens",
        "n": "Antal svar",
        "total": "Totalt",
        "figure": "Uppgift",
        "group": "Grupp",
        "campaign": "kampanj {id}",
        "survey": "enkät {survey} v{version}",
        "period": "svar {since} till {until}",
        "followups_sent": "Uppföljningar skickade",
        "status_open": "PRELIMINÄRT: kampanjen är {status}; siffrorna är slutliga när den stängs.",
        "change": "Förändring mot kampanj {id}",
        "no_previous": (
            "Ingen tidigare avslutad kampanj av samma enkät med minst {k} svar att jämföra med."
        ),
        "note_groups": (
            "{mark} = visas inte: färre än {k} i gruppen svarade på frågan, eller gruppen skulle "
            "kunna räknas fram ur totalen och de andra grupperna (k = {k})."
        ),
        "note_cells": (
            "{mark} = visas inte: bygger på färre än {k} personer, eller skulle kunna räknas fram "
            "ur andra siffror i tabellen. Ingen siffra bygger på färre än {k} personer."
        ),
        "about_rows": (
            "En rad per svar. Respondent-id är slumpade och pekar inte ut någon. "
            "Fritextsvar har telefonnummer, e-postadresser och personnummer maskerade."
        ),
        "other_versions": "Svar på andra versioner av enkäten räknas inte här: {versions}.",
        "gender": "Kön",
        "target_group": "Målgrupp",
        "contact_length": "Kontakttid",
        "unit": "Enhet",
        "age": "Ålder",
        "origin_followup": "Svar på uppföljningar som reglerna skickat",
        "origin_public": (
            "Svar från öppna starter (webbchattens lista eller nyckelord), hålls isär från "
            "uppföljningar och kampanjer"
        ),
    },
    "en": {
        "summary": "Summary",
        "answers": "Answers",
        "about": "About the answers",
        "question": "Question",
        "row": "Answer option",
        "count": "Count",
        "share": "Share",
        "share_positive": "Share positive",
        "mean": "Mean",
        "median": "Median",
        "participation": "Participation",
        "invited": "Invited",
        "started": "Started",
        "completed": "Completed",
        "opted_out": "Opted out",
        "response_rate": "Response rate",
        "n": "Answers",
        "total": "Total",
        "figure": "Figure",
        "group": "Group",
        "campaign": "campaign {id}",
        "survey": "survey {survey} v{version}",
        "period": "answers {since} to {until}",
        "followups_sent": "Follow-ups sent",
        "status_open": "PRELIMINARY: the campaign is {status}; figures are final when it closes.",
        "change": "Change since campaign {id}",
        "no_previous": (
            "No earlier closed campaign of the same survey with at least {k} answers to compare "
            "with."
        ),
        "note_groups": (
            "{mark} = not shown: fewer than {k} in the group answered the question, or the group "
            "could be worked out from the total and the other groups (k = {k})."
        ),
        "note_cells": (
            "{mark} = not shown: it rests on fewer than {k} people, or could be worked out from "
            "other figures in the table. No figure rests on fewer than {k} people."
        ),
        "about_rows": (
            "One row per answer. Respondent ids are random and point at nobody. Free-text "
            "answers have phone numbers, e-mail addresses and personal identity numbers masked."
        ),
        "other_versions": (
            "Answers to other versions of the survey are not counted here: {versions}."
        ),
        "gender": "Gender",
        "target_group": "Target group",
        "contact_length": "Length of contact",
        "unit": "Unit",
        "age": "Age",
        "origin_followup": "Answers to follow-ups sent by the rules",
        "origin_public": (
            "Answers from open starts (the web chat list or a keyword), kept apart from "
            "follow-ups and campaigns"
        ),
    },
    "ar": {
        "summary": "ملخص",
        "answers": "الإجابات",
        "about": "عن الإجابات",
        "question": "السؤال",
        "row": "خيار الإجابة",
        "count": "العدد",
        "share": "النسبة",
        "share_positive": "نسبة الإجابات الإيجابية",
        "mean": "المتوسط",
        "median": "الوسيط",
        "participation": "المشاركة",
        "invited": "المدعوون",
        "started": "بدأوا",
        "completed": "أكملوا",
        "opted_out": "رفضوا",
        "response_rate": "نسبة الاستجابة",
        "n": "عدد الإجابات",
        "total": "المجموع",
        "figure": "البيان",
        "group": "المجموعة",
        "campaign": "الحملة {id}",
        "survey": "الاستبيان {survey} الإصدار {version}",
        "period": "الإجابات من {since} إلى {until}",
        "followups_sent": "رسائل المتابعة المرسلة",
        "status_open": "نتائج أولية: حالة الحملة {status}؛ تصبح الأرقام نهائية عند إغلاقها.",
        "change": "التغير مقارنة بالحملة {id}",
        "no_previous": (
            "لا توجد حملة سابقة مغلقة للاستبيان نفسه فيها {k} إجابات على الأقل للمقارنة بها."
        ),
        "note_groups": (
            "{mark} = لا يُعرض: أجاب عن السؤال أقل من {k} أشخاص في المجموعة، أو يمكن استنتاج "
            "المجموعة من المجموع والمجموعات الأخرى (k = {k})."
        ),
        "note_cells": (
            "{mark} = لا يُعرض: يستند إلى أقل من {k} أشخاص، أو يمكن استنتاجه من أرقام أخرى في "
            "الجدول. لا يستند أي رقم إلى أقل من {k} أشخاص."
        ),
        "about_rows": (
            "صف واحد لكل إجابة. أرقام المجيبين عشوائية ولا تدل على أحد. أُخفيت أرقام الهواتف "
            "وعناوين البريد الإلكتروني والأرقام الشخصية في الإجابات النصية."
        ),
        "other_versions": "لا تُحتسب هنا الإجابات على إصدارات أخرى من الاستبيان: {versions}.",
        "gender": "الجنس",
        "target_group": "الفئة المستهدفة",
        "contact_length": "مدة التواصل",
        "unit": "الوحدة",
        "age": "العمر",
        "origin_followup": "إجابات على رسائل المتابعة التي أرسلتها القواعد",
        "origin_public": (
            "إجابات من بدايات مفتوحة (قائمة الدردشة أو كلمة مفتاحية)، منفصلة عن المتابعات والحملات"
        ),
    },
}
STAFF_LANGUAGES: Final = tuple(STAFF)
"""Languages the staff outputs (terminal, XLSX) have their own headings in."""

GROUPS: Final[Mapping[str, Mapping[str, str]]] = {
    "sv": {
        "missing": "Uppgift saknas",
        "<6m": "Kortare än 6 månader",
        "6-12m": "6–12 månader",
        "1-3y": "1–3 år",
        ">3y": "Mer än 3 år",
        "kvinna": "Kvinna",
        "man": "Man",
        "annat": "Annat",
        "years": "år",
    },
    "en": {
        "missing": "Not stated",
        "<6m": "Less than 6 months",
        "6-12m": "6–12 months",
        "1-3y": "1–3 years",
        ">3y": "More than 3 years",
        "kvinna": "Woman",
        "man": "Man",
        "annat": "Other",
        "years": "years",
    },
    "ar": {
        "missing": "غير مذكور",
        "<6m": "أقل من 6 أشهر",
        "6-12m": "6–12 شهراً",
        "1-3y": "1–3 سنوات",
        ">3y": "أكثر من 3 سنوات",
        "kvinna": "امرأة",
        "man": "رجل",
        "annat": "آخر",
        "years": "سنة",
    },
}

_TARGET_GROUPS: Final[Mapping[str, Mapping[str, str]]] = {
    "missbruk": {
        "sv": "Missbruk och beroende",
        "en": "Substance use and addiction",
        "ar": "الإدمان وتعاطي المواد",
    },
    "ekonomiskt_bistand": {
        "sv": "Ekonomiskt bistånd",
        "en": "Financial assistance",
        "ar": "المساعدة المالية",
    },
    "forsorjningsstod": {"sv": "Försörjningsstöd", "en": "Income support", "ar": "إعانة الإعالة"},
    "barn_unga": {
        "sv": "Barn och unga",
        "en": "Children and young people",
        "ar": "الأطفال والشباب",
    },
    "barn_och_unga": {
        "sv": "Barn och unga",
        "en": "Children and young people",
        "ar": "الأطفال والشباب",
    },
    "barn": {"sv": "Barn", "en": "Children", "ar": "الأطفال"},
    "unga": {"sv": "Unga", "en": "Young people", "ar": "الشباب"},
    "vald_i_nara": {
        "sv": "Våld i nära relationer",
        "en": "Violence in close relationships",
        "ar": "العنف في العلاقات القريبة",
    },
    "vald_i_nara_relationer": {
        "sv": "Våld i nära relationer",
        "en": "Violence in close relationships",
        "ar": "العنف في العلاقات القريبة",
    },
    "lss": {"sv": "LSS", "en": "LSS (disability support)", "ar": "دعم ذوي الإعاقة (LSS)"},
    "lss_insats": {
        "sv": "LSS-insats",
        "en": "LSS support (disability)",
        "ar": "دعم ذوي الإعاقة (LSS)",
    },
    "funktionsnedsattning": {"sv": "Funktionsnedsättning", "en": "Disability", "ar": "الإعاقة"},
    "socialpsykiatri": {
        "sv": "Socialpsykiatri",
        "en": "Psychosocial support",
        "ar": "الدعم النفسي الاجتماعي",
    },
    "hemloshet": {"sv": "Hemlöshet", "en": "Homelessness", "ar": "التشرد"},
    "aldreomsorg": {"sv": "Äldreomsorg", "en": "Elderly care", "ar": "رعاية المسنين"},
    "aldre": {"sv": "Äldre", "en": "Older people", "ar": "كبار السن"},
    "familjeratt": {"sv": "Familjerätt", "en": "Family law", "ar": "قانون الأسرة"},
}


def staff_texts(lang: str) -> Mapping[str, str]:
    """Headings of the staff outputs in `lang` (its base language, else English)."""
    return STAFF.get(lang) or STAFF.get(base_language(lang)) or STAFF["en"]


def group_texts(lang: str) -> Mapping[str, str]:
    """Built-in labels of breakdown groups in `lang` (its base language, else English)."""
    return GROUPS.get(lang) or GROUPS.get(base_language(lang)) or GROUPS["en"]


def target_group_name(code: str, lang: str) -> str:
    """A target group's name: "ekonomiskt_bistand" -> "Ekonomiskt bistånd".

    Contact lists store target groups as snake_case codes (usable in audience expressions); the
    common ones of social services have names here, any other is written out from its code."""
    names = _TARGET_GROUPS.get(code)
    if names:
        return names.get(lang) or names.get(base_language(lang)) or names["en"]
    text = code.replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else code
