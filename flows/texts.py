"""Built-in texts in Swedish, English and Arabic: re-prompts, help, confirmations and notices.

Swedish and English texts stay within GSM-7 (no dashes, curly quotes or ellipses) so an SMS
costs one 160-character segment where it can; Arabic always goes as UCS-2."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from flows.model import base_language

__all__ = ["BUILT_IN_LANGUAGES", "LANGUAGE_ALIASES", "TEXTS", "language_name", "text"]

BUILT_IN_LANGUAGES: Final = ("sv", "en", "ar")
FALLBACK_LANGUAGE: Final = "sv"

TEXTS: Final[Mapping[str, Mapping[str, str]]] = {
    "survey_menu": {
        "sv": "Hej! Skicka ett av orden nedan för att svara på en enkät:",
        "en": "Hello! Send one of the words below to answer a survey:",
        "ar": "مرحبًا! أرسل إحدى الكلمات أدناه للإجابة على استبيان:",
    },
    "no_surveys": {
        "sv": "Hej! Just nu finns ingen enkät att svara på.",
        "en": "Hello! There is no survey to answer right now.",
        "ar": "مرحبًا! لا يوجد استبيان للإجابة عليه الآن.",
    },
    "reprompt_select_one": {
        "sv": "Svara med en siffra mellan 1 och {max}.",
        "en": "Please answer with a number from 1 to {max}.",
        "ar": "يرجى الرد برقم من 1 إلى {max}.",
    },
    "reprompt_select_many": {
        "sv": "Svara med en eller flera siffror mellan 1 och {max}, till exempel 1 3.",
        "en": "Please answer with one or more numbers from 1 to {max}, for example 1 3.",
        "ar": "يرجى الرد برقم واحد أو أكثر من 1 إلى {max}، مثلاً 1 3.",
    },
    "reprompt_numeric": {
        "sv": "Svara med ett heltal, till exempel 7.",
        "en": "Please answer with a whole number, for example 7.",
        "ar": "يرجى الرد بعدد صحيح، مثلاً 7.",
    },
    "reprompt_numeric_range": {
        "sv": "Svara med ett heltal mellan {min} och {max}.",
        "en": "Please answer with a whole number from {min} to {max}.",
        "ar": "يرجى الرد بعدد صحيح من {min} إلى {max}.",
    },
    "reprompt_numeric_min": {
        "sv": "Svara med ett heltal, minst {min}.",
        "en": "Please answer with a whole number of at least {min}.",
        "ar": "يرجى الرد بعدد صحيح لا يقل عن {min}.",
    },
    "reprompt_numeric_max": {
        "sv": "Svara med ett heltal, högst {max}.",
        "en": "Please answer with a whole number of at most {max}.",
        "ar": "يرجى الرد بعدد صحيح لا يزيد عن {max}.",
    },
    "reprompt_scale": {
        "sv": "Svara med en siffra mellan {min} och {max}.",
        "en": "Please answer with a number from {min} to {max}.",
        "ar": "يرجى الرد برقم من {min} إلى {max}.",
    },
    "reprompt_scale_smileys": {
        "sv": "Svara med en siffra mellan {min} och {max} eller med en av smileysarna.",
        "en": "Please answer with a number from {min} to {max} or one of the smileys.",
        "ar": "يرجى الرد برقم من {min} إلى {max} أو بأحد الوجوه التعبيرية.",
    },
    "reprompt_open": {
        "sv": "Skriv ditt svar med egna ord.",
        "en": "Please write your answer in your own words.",
        "ar": "يرجى كتابة إجابتك بكلماتك الخاصة.",
    },
    "reprompt_date": {
        "sv": "Svara med ett datum, till exempel 5/3 eller 2024-03-05.",
        "en": "Please answer with a date, for example 5 March or 2024-03-05.",
        "ar": "يرجى الرد بتاريخ، مثلاً 2024-03-05 أو 5/3 (اليوم/الشهر).",
    },
    "select_many_hint": {
        "sv": "Du kan välja flera.",
        "en": "You can choose more than one.",
        "ar": "يمكنك اختيار أكثر من إجابة.",
    },
    "help_sender": {
        "sv": "Den här enkäten kommer från {sender}.",
        "en": "This survey is from {sender}.",
        "ar": "هذا الاستبيان من {sender}.",
    },
    "help_no_sender": {
        "sv": "Det här är en enkät. Du väljer själv om du vill svara.",
        "en": "This is a survey. It is up to you whether you answer.",
        "ar": "هذا استبيان، والمشاركة فيه اختيارية.",
    },
    "help_commands": {
        "sv": (
            "Skriv HOPPA för att hoppa över en fråga, TILLBAKA för att ändra förra svaret, "
            "SPRÅK för att byta språk eller STOPP för att sluta."
        ),
        "en": (
            "Reply SKIP to skip a question, BACK to change your last answer, "
            "LANGUAGE to change language or STOP to end."
        ),
        "ar": (
            "أرسل «تخطي» لتخطي سؤال، أو «رجوع» لتغيير إجابتك السابقة، "
            "أو «لغة» لتغيير اللغة، أو «توقف» للإنهاء."
        ),
    },
    "opted_out": {
        "sv": (
            "Klart, du får inga fler meddelanden från oss. "
            "Skriv START eller BÖRJA om du vill börja igen."
        ),
        "en": (
            "Done, you won't get any more messages from us. Reply START if you want to start again."
        ),
        "ar": "تم، لن تصلك رسائل أخرى منا. أرسل «ابدأ» أو START إذا أردت البدء من جديد.",
    },
    "opted_in": {
        "sv": "Välkommen tillbaka! Du kan få meddelanden från oss igen. Skriv STOPP för att sluta.",
        "en": "Welcome back! You can get messages from us again. Reply STOP to end.",
        "ar": "أهلاً بعودتك! يمكن أن تصلك رسائلنا من جديد. أرسل «توقف» للإيقاف.",
    },
    "already_answered": {
        "sv": "Tack! Du har redan svarat på den här enkäten.",
        "en": "Thank you! You have already answered this survey.",
        "ar": "شكراً! لقد أجبت بالفعل على هذا الاستبيان.",
    },
    "too_many_starts": {
        "sv": "Du har startat flera enkäter på kort tid. Försök igen om en stund.",
        "en": "You have started several surveys in a short time. Please try again later.",
        "ar": "لقد بدأت عدة استبيانات في وقت قصير. يرجى المحاولة لاحقاً.",
    },
    "button_stale": {
        "sv": "Den frågan är redan besvarad.",
        "en": "That question has already been answered.",
        "ar": "تمت الإجابة على هذا السؤال بالفعل.",
    },
    "closed": {
        "sv": "Tack för ditt svar! Enkäten är tyvärr stängd, så svaret kom inte med.",
        "en": "Thank you for your reply! The survey has closed, so your answer was not included.",
        "ar": "شكراً لردك! لقد أُغلق الاستبيان، لذلك لم تُحتسب إجابتك.",
    },
    "expired": {
        "sv": (
            "Enkäten har avslutats eftersom det gick en tid sedan ditt senaste svar. "
            "Tack för din tid!"
        ),
        "en": (
            "The survey has ended because some time has passed since your last answer. "
            "Thank you for your time!"
        ),
        "ar": "انتهى الاستبيان لأنه مرّ وقت طويل منذ إجابتك الأخيرة. شكراً لوقتك!",
    },
    "language_menu": {
        "sv": "Välj språk, svara med en siffra:",
        "en": "Choose a language, reply with a number:",
        "ar": "اختر اللغة بالرد برقم:",
    },
    "only_one_language": {
        "sv": "Den här enkäten finns bara på ett språk: {language}.",
        "en": "This survey is only available in one language: {language}.",
        "ar": "هذا الاستبيان متوفر بلغة واحدة فقط: {language}.",
    },
    "cannot_skip": {
        "sv": "Den här frågan behöver ett svar, så den går inte att hoppa över.",
        "en": "This question needs an answer, so it can't be skipped.",
        "ar": "هذا السؤال يحتاج إلى إجابة، لذلك لا يمكن تخطيه.",
    },
    "nothing_to_go_back_to": {
        "sv": "Det finns ingen tidigare fråga att gå tillbaka till.",
        "en": "There is no earlier question to go back to.",
        "ar": "لا يوجد سؤال سابق للرجوع إليه.",
    },
    "answer_shortened": {
        "sv": "Ditt svar var långt, så vi sparade de första {max_length} tecknen.",
        "en": "Your answer was long, so we saved the first {max_length} characters.",
        "ar": "كانت إجابتك طويلة، لذلك حفظنا أول {max_length} حرفاً منها.",
    },
    "moving_on": {
        "sv": "Vi hoppar över den frågan och går vidare.",
        "en": "We'll skip that question and move on.",
        "ar": "سنتخطى هذا السؤال وننتقل إلى التالي.",
    },
    "ended": {
        "sv": "Vi avslutar här eftersom vi inte kunde tolka svaret. Tack för din tid!",
        "en": "We'll stop here because we couldn't understand the answer. Thank you for your time!",
        "ar": "سنتوقف هنا لأننا لم نتمكن من فهم الإجابة. شكراً لوقتك!",
    },
    "thanks_default": {
        "sv": "Tack för dina svar!",
        "en": "Thank you for your answers!",
        "ar": "شكراً على إجاباتك!",
    },
    "campaign_invitation": {
        "sv": (
            "Hej! {sender} vill gärna höra vad du tycker och skickar några korta frågor. "
            "Det är frivilligt att svara. Svara STOPP om du inte vill få fler meddelanden."
        ),
        "en": (
            "Hello! {sender} would like to hear what you think and is sending a few short "
            "questions. Answering is voluntary. Reply STOP if you don't want more messages."
        ),
        "ar": (
            "مرحبًا! يودّ {sender} أن يعرف رأيك ويرسل إليك بعض الأسئلة القصيرة. "
            "الإجابة اختيارية. أرسل «توقف» إذا كنت لا ترغب في تلقي المزيد من الرسائل."
        ),
    },
    "campaign_invitation_no_sender": {
        "sv": (
            "Hej! Vi vill gärna höra vad du tycker och skickar några korta frågor. "
            "Det är frivilligt att svara. Svara STOPP om du inte vill få fler meddelanden."
        ),
        "en": (
            "Hello! We would like to hear what you think and are sending a few short "
            "questions. Answering is voluntary. Reply STOP if you don't want more messages."
        ),
        "ar": (
            "مرحبًا! نودّ أن نعرف رأيك ونرسل إليك بعض الأسئلة القصيرة. "
            "الإجابة اختيارية. أرسل «توقف» إذا كنت لا ترغب في تلقي المزيد من الرسائل."
        ),
    },
    "campaign_reminder": {
        "sv": (
            "En vänlig påminnelse: vi vill gärna höra vad du tycker. Det är frivilligt. "
            "Svara STOPP om du inte vill få fler meddelanden."
        ),
        "en": (
            "A friendly reminder: we would like to hear what you think. It is voluntary. "
            "Reply STOP if you don't want more messages."
        ),
        "ar": (
            "تذكير لطيف: نودّ أن نعرف رأيك. المشاركة اختيارية. "
            "أرسل «توقف» إذا كنت لا ترغب في تلقي المزيد من الرسائل."
        ),
    },
}

_LANGUAGE_NAMES: Final[Mapping[str, str]] = {
    "sv": "Svenska",
    "sv-x-lattlast": "Lättläst svenska",
    "en": "English",
    "ar": "العربية",
    "fa": "فارسی",
    "prs": "دری",
    "so": "Soomaali",
    "ti": "ትግርኛ",
    "fi": "Suomi",
    "fit": "Meänkieli",
    "se": "Davvisámegiella",
    "smj": "Julevsámegiella",
    "sma": "Åarjelsaemien gïele",
    "rom": "Romani chib",
    "yi": "ייִדיש",
    "uk": "Українська",
    "ru": "Русский",
    "pl": "Polski",
    "bs": "Bosanski",
    "hr": "Hrvatski",
    "sr": "Srpski",
    "tr": "Türkçe",
    "ku": "Kurdî",
    "ckb": "کوردیی ناوەندی",
    "es": "Español",
    "de": "Deutsch",
    "fr": "Français",
    "th": "ภาษาไทย",
}

LANGUAGE_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {
    "sv": ("svenska", "swedish", "السويدية", "سويدي"),
    "sv-x-lattlast": ("lättläst", "lättläst svenska", "easy swedish", "easy to read swedish"),
    "en": ("english", "engelska", "الإنجليزية", "انجليزي"),
    "ar": ("arabic", "arabiska", "عربي", "العربية"),
}
"""Other names a person may type to pick a language from the menu."""


def text(key: str, lang: str, **params: object) -> str:
    """The built-in text `key` in `lang`, else its base language, else Swedish."""
    variants = TEXTS[key]
    for code in (lang, base_language(lang), FALLBACK_LANGUAGE):
        if code in variants:
            return variants[code].format(**params)
    raise KeyError(f"{key} has no {FALLBACK_LANGUAGE} text")


def language_name(code: str) -> str:
    """A language's name in that language (as shown in the language menu); the code if unknown."""
    return _LANGUAGE_NAMES.get(code) or _LANGUAGE_NAMES.get(base_language(code), code)
