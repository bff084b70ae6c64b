"""Survey files (TOML) -> `Survey`, with every problem reported as `path:line: message`.

Why one module: every check reports `path:line`, so the checks and the line index they need stay
together.

tomllib gives line numbers only for syntax errors, so `_LineIndex` scans the raw text for the
line of each top-level key, each `[[questions]]` table and its keys, and each choice's `id`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from flows.answers import normalize
from flows.durations import parse_duration
from flows.engine import classify_keyword, question_message
from flows.expr import ExprError, compile_expr
from flows.model import (
    Choice,
    LocalizedText,
    Participation,
    Question,
    QuestionType,
    Survey,
)
from flows.render import render_text
from flows.segments import segment_info
from flows.types import RangeFields, kind_of

__all__ = [
    "MAX_SMS_SEGMENTS",
    "PLACEHOLDERS",
    "LoadResult",
    "Problem",
    "Source",
    "SurveyFileError",
    "checksum",
    "fill_placeholders",
    "load_sources",
    "load_survey_text",
    "survey_definition",
    "survey_from_definition",
]

MAX_SMS_SEGMENTS: Final = 3
"""A question (as rendered on SMS) or an intro/thanks/invitation may cost at most this many."""

SURVEY_ID = re.compile(r"[a-z0-9][a-z0-9-]*")
ITEM_ID = re.compile(r"[a-z0-9_]+")
LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")
KEYWORD = re.compile(r"[^\s]{2,30}")

CARRIER_KEYWORDS: Final = frozenset({"yes", "unstop", "stopall", "info"})
"""Words Twilio and carriers act on themselves (besides the engine's own commands)."""

SCALE_STYLES: Final = ("smileys", "numbers")
TYPE_KEYS: Final = ("choices", "positive", "dont_know", "min", "max", "max_length", "style")
"""Keys of a question's table that only some types take (`flows.types.<type>.KIND.keys`)."""
BREAKDOWNS: Final = ("gender", "contact_length", "age")

_TOP_REQUIRED: Final = ("id", "version", "languages", "title", "intro", "thanks", "questions")
_TOP_OPTIONAL: Final = (
    "anonymous",
    "participation",
    "keywords",
    "expires_after",
    "max_retries",
    "sender",
    "invitation",
    "results_use",
    "public",
    "minors",
)
_QUESTION_REQUIRED: Final = ("id", "type", "text")
_QUESTION_OPTIONAL: Final = (
    "required",
    "choices",
    "positive",
    "dont_know",
    "min",
    "max",
    "max_length",
    "show_if",
    "style",
    "breakdown",
)
_CHOICE_KEYS: Final = ("id", "text")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a survey file, at a line (0 when the line is unknown)."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class SurveyFileError(Exception):
    """A survey file with problems; `problems` lists all of them, in file order."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Surveys that loaded cleanly, and every problem found in any file."""

    surveys: tuple[Survey, ...]
    problems: tuple[Problem, ...]


def checksum(text: str) -> str:
    """sha256 hex of the file text: tells whether a stored version still matches its file."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_survey_text(
    text: str, path: str = "<string>", placeholders: Mapping[str, str] | None = None
) -> Survey:
    """Parse and check one survey file's text; raises SurveyFileError listing every problem.

    `placeholders` fills {organisation} and {results_url} (see PLACEHOLDERS) before the checks,
    so SMS lengths are counted with the real values; without it they stay as written."""
    data = _parse_toml(text, path)
    lines = _LineIndex.scan(text)
    unknown = _unknown_placeholders(data, lines, path)
    if placeholders is not None:
        data = fill_placeholders(data, placeholders)
    try:
        survey = _SurveyBuilder(data, lines, path).build()
    except SurveyFileError as err:
        raise SurveyFileError(sorted([*err.problems, *unknown], key=lambda p: p.line)) from None
    if unknown:
        raise SurveyFileError(unknown)
    return survey


def survey_definition(text: str) -> dict[str, Any]:
    """The survey file as a JSON-able dict, to store with a survey version in the database."""
    return {str(k): _jsonable(v) for k, v in _parse_toml(text, "<string>").items()}


def survey_from_definition(
    definition: Mapping[str, Any],
    source: str = "",
    placeholders: Mapping[str, str] | None = None,
) -> Survey:
    """Rehydrate a stored `survey_definition` (stored as written, so `placeholders` fills it
    the same way as the file). Its structure is checked again, but not the authoring rules that
    may tighten over time (SMS length, reserved keywords), so a version that conversations
    already use always loads. Line numbers are unknown (0)."""
    if placeholders is not None:
        definition = fill_placeholders(definition, placeholders)
    builder = _SurveyBuilder(
        definition, _LineIndex(), source or "<definition>", source, authoring_rules=False
    )
    return builder.build()


@dataclass(frozen=True, slots=True)
class Source:
    """One survey file's text as read (the reading is the caller's: this module does no I/O),
    or the problem that kept it from being read."""

    name: str
    text: str | None = None
    problem: Problem | None = None


def load_sources(
    sources: Sequence[Source], placeholders: Mapping[str, str] | None = None
) -> LoadResult:
    """Load survey files from their texts, checking across files too (ids and versions,
    keywords); `placeholders` as in `load_survey_text`. Problems of unread files are kept."""
    surveys: list[Survey] = []
    problems: list[Problem] = []
    seen: dict[tuple[str, int], Survey] = {}
    keyword_owner: dict[str, Survey] = {}
    for source in sources:
        if source.text is None:
            problems.append(source.problem or Problem(source.name, 0, "cannot read"))
            continue
        file, text = source.name, source.text
        try:
            survey = load_survey_text(text, file, placeholders)
        except SurveyFileError as err:
            problems.extend(err.problems)
            continue
        lines = _LineIndex.scan(text)
        key = (survey.id, survey.version)
        if key in seen:
            problems.append(
                Problem(
                    str(file),
                    lines.top_line("version") or lines.top_line("id"),
                    f"survey '{survey.id}' version {survey.version} is also defined in "
                    f"{seen[key].source}; raise the version or change the id",
                )
            )
            continue
        clash = False
        for word in survey.keywords:
            owner = keyword_owner.get(normalize(word))
            if owner is not None and owner.id != survey.id:
                clash = True
                problems.append(
                    Problem(
                        str(file),
                        lines.top_line("keywords"),
                        f"keyword '{word}' is already used by survey '{owner.id}' ({owner.source})",
                    )
                )
        if clash:
            continue
        seen[key] = survey
        for word in survey.keywords:
            keyword_owner.setdefault(normalize(word), survey)
        surveys.append(survey)
    return LoadResult(tuple(surveys), tuple(problems))


_TOML_WHERE = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)\s*$")


def _parse_toml(text: str, path: str) -> dict[str, Any]:
    text = text.removeprefix("\ufeff")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        message = str(err)
        where = _TOML_WHERE.search(message)
        line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        if where is not None:
            message = message[: where.start()]
            if where.group(1):
                line = int(where.group(1))
                message += f" (column {where.group(2)})"
        raise SurveyFileError([Problem(path, line, f"TOML syntax: {message}")]) from err
    except RecursionError as err:
        raise SurveyFileError([Problem(path, 1, "TOML syntax: nested too deeply")]) from err


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return value


# --- placeholders -----------------------------------------------------------------------------

PLACEHOLDERS: Final = ("organisation", "results_url")
"""What survey texts may say in braces, filled from the service's configuration when loaded:
{organisation} (who asks, e.g. "Malmö stad") and {results_url} (where results are shown)."""

_PLACEHOLDER_RE = re.compile(r"\{([a-z_]+)\}")


def fill_placeholders(data: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """A copy of a parsed survey with every {name} of `values` in its texts replaced."""

    def fill(value: object) -> object:
        if isinstance(value, str):
            return _PLACEHOLDER_RE.sub(lambda m: values.get(m[1], m[0]), value)
        if isinstance(value, Mapping):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    return {k: fill(v) for k, v in data.items()}


def _unknown_placeholders(data: Mapping[str, Any], lines: _LineIndex, path: str) -> list[Problem]:
    """A {name} in a text that is not one of PLACEHOLDERS (a typo would reach people as is)."""
    problems: list[Problem] = []
    known = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)

    def walk(value: object, line: int) -> None:
        if isinstance(value, str):
            for name in _PLACEHOLDER_RE.findall(value):
                if name not in PLACEHOLDERS:
                    message = f"unknown placeholder {{{name}}} (known: {known})"
                    problems.append(Problem(path, line, message))
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item, line)
        elif isinstance(value, list):
            for item in value:
                walk(item, line)

    for key, value in data.items():
        if key == "questions" and isinstance(value, list):
            for index, question in enumerate(value):
                if isinstance(question, Mapping):
                    for qkey, qvalue in question.items():
                        walk(qvalue, lines.question_line(index, str(qkey)))
        else:
            walk(value, lines.top_line(key))
    return problems


# --- line index -------------------------------------------------------------------------------

_KEY_LINE = re.compile(r"""\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*[=.]""")
_HEADER = re.compile(r"""\s*(\[\[?)\s*([^\]]*?)\s*\]\]?""")
_INLINE_ID = re.compile(r"(?:^|(?<=[{,\s]))id\s*=")


@dataclass(slots=True)
class _QuestionLines:
    header: int
    keys: dict[str, int] = field(default_factory=dict)
    choices: list[int] = field(default_factory=list)
    """Line of each choice's `id`, in file order."""


@dataclass(slots=True)
class _LineIndex:
    """Which line each key of interest is on; every lookup answers 0 when unknown."""

    top: dict[str, int] = field(default_factory=dict)
    questions: list[_QuestionLines] = field(default_factory=list)
    first: int = 0
    """1 for a scanned file (problems about the whole file point there), 0 for a definition."""

    def top_line(self, key: str) -> int:
        return self.top.get(key, 0)

    def question_line(self, index: int, key: str | None = None) -> int:
        if index >= len(self.questions):
            return self.top_line("questions")
        q = self.questions[index]
        return q.keys.get(key, q.header) if key else q.header

    def choice_line(self, index: int, choice: int) -> int:
        if index < len(self.questions) and choice < len(self.questions[index].choices):
            return self.questions[index].choices[choice]
        return self.question_line(index, "choices")

    @classmethod
    def scan(cls, text: str) -> _LineIndex:
        index = cls(first=1)
        section = "top"  # "top" | "question" | "choice" | "other"
        depth = 0
        multiline: str | None = None
        array_key: str | None = None
        for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), 1):
            question = index.questions[-1] if index.questions else None
            if depth == 0 and multiline is None:
                array_key = None
                header = _HEADER.match(line)
                key = _KEY_LINE.match(line) if header is None else None
                if header is not None:
                    section = _enter(index, header.group(1), header.group(2), number)
                elif key is not None:
                    name = next(g for g in key.groups() if g is not None)
                    array_key = name
                    if section == "top":
                        index.top.setdefault(name, number)
                    elif question is not None and section == "question":
                        question.keys.setdefault(name, number)
                    elif question is not None and section == "choice" and name == "id":
                        question.choices.append(number)
            code, depth, multiline = _strip_strings(line, depth, multiline)
            if array_key == "choices" and section == "question" and question is not None:
                question.choices.extend(number for _ in _INLINE_ID.finditer(code))
        return index


def _enter(index: _LineIndex, brackets: str, name: str, number: int) -> str:
    parts = [p.strip().strip("\"'") for p in name.split(".")]
    if brackets == "[[" and parts == ["questions"]:
        index.top.setdefault("questions", number)
        index.questions.append(_QuestionLines(number))
        return "question"
    if parts[0] == "questions" and index.questions:
        question = index.questions[-1]
        if brackets == "[[" and parts[1:] == ["choices"]:
            question.keys.setdefault("choices", number)
            return "choice"
        if len(parts) > 1:
            question.keys.setdefault(parts[1], number)
        return "other"
    index.top.setdefault(parts[0], number)
    return "other"


def _strip_strings(line: str, depth: int, multiline: str | None) -> tuple[str, int, str | None]:
    """The line without string contents and comments; bracket depth and open multi-line string
    carried over to the next line."""
    out: list[str] = []
    i, n = 0, len(line)
    quote: str | None = multiline
    while i < n:
        c = line[i]
        if quote is not None:
            if quote in ('"', '"""') and c == "\\":
                i += 2
                continue
            if line.startswith(quote, i):
                out.append('"')
                i += len(quote)
                quote = None
                continue
            i += 1
            continue
        if c == "#":
            break
        if c in "\"'":
            quote = c * 3 if line.startswith(c * 3, i) else c
            out.append('"')
            i += len(quote)
            continue
        if c in "[{":
            depth += 1
        elif c in "]}":
            depth = max(0, depth - 1)
        out.append(c)
        i += 1
    if quote is not None and len(quote) == 1:
        quote = None  # an unclosed one-line string: tomllib reports it
    return "".join(out), depth, quote


# --- checking ---------------------------------------------------------------------------------


def _what(value: object) -> str:
    names = {bool: "true/false", int: "a whole number", float: "a decimal number", str: "a text"}
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return names.get(type(value), type(value).__name__)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _SurveyBuilder:
    def __init__(
        self,
        data: Mapping[str, Any],
        lines: _LineIndex,
        path: str,
        source: str | None = None,
        *,
        authoring_rules: bool = True,
    ) -> None:
        self.data = data
        self.authoring_rules = authoring_rules
        self.lines = lines
        self.path = path
        self.source = path if source is None else source
        self.problems: list[Problem] = []
        self.languages: tuple[str, ...] = ()

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, line, message))

    def build(self) -> Survey:
        survey = self._survey()
        if self.problems or survey is None:
            self.problems.sort(key=lambda p: p.line)
            raise SurveyFileError(self.problems)
        return survey

    # -- typed getters: report a problem and answer None when the value is wrong

    def _typed(
        self,
        table: Mapping[str, Any],
        key: str,
        line: int,
        what: str,
        check: type,
    ) -> Any:
        if key not in table:
            return None
        value = table[key]
        if isinstance(value, check) and not (isinstance(value, bool) and check is int):
            return value
        self.problem(line, f"{what} must be {_what_type(check)}, not {_what(value)}")
        return None

    def _texts(self, value: Any, what: str, line: int) -> LocalizedText | None:
        """A localized text: a table with a non-empty text for every language."""
        example = ", ".join(f'{lang} = "..."' for lang in self.languages[:2]) or 'sv = "..."'
        if not isinstance(value, dict):
            self.problem(
                line, f"{what} must be a table of texts per language, like {{ {example} }}"
            )
            return None
        ok = True
        for lang, text in value.items():
            if self.languages and lang not in self.languages:
                self.problem(line, f"{what} has a text in '{lang}', which is not in languages")
                ok = False
            elif not isinstance(text, str):
                self.problem(line, f"{what}.{lang} must be a text, not {_what(text)}")
                ok = False
            elif not text.strip():
                self.problem(line, f"{what}.{lang} is empty")
                ok = False
        missing = [lang for lang in self.languages if lang not in value]
        if missing:
            self.problem(
                line, f"{what} is missing the translation for {', '.join(map(repr, missing))}"
            )
            ok = False
        return {str(k): str(v).strip() for k, v in value.items()} if ok else None

    def _id_list(self, table: Mapping[str, Any], key: str, line: int, what: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(line, f"{what} must be a list of texts")
            return ()
        return tuple(value)

    def _unknown_keys(
        self, table: Mapping[str, Any], allowed: Sequence[str], what: str, line_of: Any
    ) -> None:
        for key in table:
            if key not in allowed:
                hint = _closest(str(key), allowed)
                self.problem(
                    line_of(key),
                    f"unknown key '{key}' in {what}"
                    + (f" (did you mean '{hint}'?)" if hint else ""),
                )

    # -- the survey

    def _survey(self) -> Survey | None:
        data, top = self.data, self.lines.top_line
        if not isinstance(data, Mapping):
            self.problem(0, "a survey definition must be a table")
            return None
        self._unknown_keys(data, _TOP_REQUIRED + _TOP_OPTIONAL, "the survey", top)
        for key in _TOP_REQUIRED:
            if key not in data:
                self.problem(self.lines.first, f"missing '{key}'")

        survey_id = self._typed(data, "id", top("id"), "id", str)
        if survey_id is not None and not SURVEY_ID.fullmatch(survey_id):
            self.problem(
                top("id"),
                f"id '{survey_id}' must be lowercase letters a-z, digits and '-', "
                "starting with a letter or digit",
            )
        version = self._typed(data, "version", top("version"), "version", int)
        if version is not None and version < 1:
            self.problem(top("version"), "version must be 1 or more")

        languages = self._languages(data, top("languages"))
        self.languages = languages
        texts: dict[str, LocalizedText | None] = {}
        for key in ("title", "intro", "thanks", "sender", "invitation", "results_use"):
            if key in data:
                texts[key] = self._texts(data[key], key, top(key))
        if self.authoring_rules:
            self._check_sms_texts(texts)

        anonymous = self._typed(data, "anonymous", top("anonymous"), "anonymous", bool)
        public = self._typed(data, "public", top("public"), "public", bool) or False
        minors = self._typed(data, "minors", top("minors"), "minors", bool) or False
        if public and minors:
            self.problem(
                top("public"),
                "a survey for children (minors = true) can never be public: it is taken only by "
                "those a campaign or follow-up invites",
            )
        participation = self._participation(data, top("participation"))
        keywords, keyword_languages = self._keywords(data, top("keywords"), languages)
        expires_after = self._duration(data, "expires_after", top("expires_after"))
        max_retries = self._typed(data, "max_retries", top("max_retries"), "max_retries", int)
        if max_retries is not None and not 0 <= max_retries <= 10:
            self.problem(top("max_retries"), "max_retries must be between 0 and 10")

        questions = self._questions(data)
        if self.problems or not languages or questions is None:
            return None
        survey = Survey(
            id=survey_id,
            version=version,
            languages=languages,
            title=texts["title"] or {},
            intro=texts["intro"] or {},
            thanks=texts["thanks"] or {},
            questions=questions,
            anonymous=True if anonymous is None else anonymous,
            participation=participation or Participation.KONSULTATION,
            keywords=keywords,
            keyword_languages=keyword_languages,
            expires_after=7 * 24 * 3600 if expires_after is None else expires_after,
            max_retries=2 if max_retries is None else max_retries,
            sender=texts.get("sender") or {},
            invitation=texts.get("invitation") or {},
            results_use=texts.get("results_use") or {},
            public=public,
            minors=minors,
            source=self.source,
        )
        if self.authoring_rules:
            self._check_questions_sms(survey)
        return None if self.problems else survey

    def _languages(self, data: Mapping[str, Any], line: int) -> tuple[str, ...]:
        if "languages" not in data:
            return ()
        value = data["languages"]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            self.problem(line, 'languages must be a non-empty list of language codes, like ["sv"]')
            return ()
        for lang in value:
            if not LANGUAGE.fullmatch(lang):
                self.problem(
                    line,
                    f"language '{lang}' must be a code like 'sv', 'ar' or a variant like "
                    "'sv-x-lattlast'",
                )
        for lang in {v for v in value if value.count(v) > 1}:
            self.problem(line, f"language '{lang}' is listed twice")
        return tuple(value)

    def _participation(self, data: Mapping[str, Any], line: int) -> Participation | None:
        value = self._typed(data, "participation", line, "participation", str)
        if value is None:
            return None
        try:
            return Participation(value)
        except ValueError:
            choices = " | ".join(p.value for p in Participation)
            self.problem(line, f"unknown participation '{value}' (use one of: {choices})")
            return None

    def _keywords(
        self, data: Mapping[str, Any], line: int, languages: Sequence[str]
    ) -> tuple[tuple[str, ...], dict[str, str]]:
        """`keywords` as a list (any language), or a table of lists per language, so the word a
        newcomer sends also tells which language to answer in."""
        value = data.get("keywords", [])
        by_language: dict[str, str] = {}
        if isinstance(value, Mapping):
            words_list: list[str] = []
            for lang in value:
                if lang not in languages:
                    self.problem(line, f"keywords: '{lang}' is not one of the survey's languages")
                    continue
                for word in self._id_list(value, lang, line, f"keywords.{lang}"):
                    words_list.append(word)
                    by_language.setdefault(normalize(word), lang)
            words = tuple(words_list)
        else:
            words = self._id_list(data, "keywords", line, "keywords")
        for word in words:
            if not KEYWORD.fullmatch(word):
                self.problem(line, f"keyword '{word}' must be one word of 2 to 30 characters")
            elif self.authoring_rules and (
                classify_keyword(word) is not None or normalize(word) in CARRIER_KEYWORDS
            ):
                self.problem(line, f"keyword '{word}' is a reserved command (stop, help, ...)")
        folded = [normalize(w) for w in words]
        for word in sorted({w for w in folded if folded.count(w) > 1}):
            self.problem(line, f"keyword '{word}' is listed twice")
        return words, by_language

    def _duration(self, data: Mapping[str, Any], key: str, line: int) -> int | None:
        value = self._typed(data, key, line, key, str)
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as err:
            self.problem(line, f"{key}: {err}")
            return None

    def _check_sms_texts(self, texts: Mapping[str, LocalizedText | None]) -> None:
        """Intro (sent together with results_use, as the engine does), thanks and invitation."""
        intro, results_use = texts.get("intro") or {}, texts.get("results_use") or {}
        for lang, body in intro.items():
            if lang in results_use:
                self._check_sms(f"{body}\n\n{results_use[lang]}", "intro with results_use", lang)
            else:
                self._check_sms(body, "intro", lang)
        for key in ("thanks", "invitation"):
            for lang, body in (texts.get(key) or {}).items():
                self._check_sms(body, key, lang)

    def _check_sms(self, body: str, what: str, lang: str) -> None:
        info = segment_info(body)
        if info.segments > MAX_SMS_SEGMENTS:
            self.problem(
                self.lines.top_line(what.split()[0]),
                f"{what} in '{lang}' is {info.segments} SMS segments ({info.units} "
                f"{info.encoding} characters); keep it to {MAX_SMS_SEGMENTS} or fewer",
            )

    # -- questions

    def _questions(self, data: Mapping[str, Any]) -> tuple[Question, ...] | None:
        line = self.lines.top_line("questions")
        if "questions" not in data:
            return None
        value = data["questions"]
        if not isinstance(value, list) or not all(isinstance(q, dict) for q in value):
            self.problem(line, "questions must be [[questions]] tables")
            return None
        if not value:
            self.problem(line, "a survey needs at least one question")
            return None
        ids = [q.get("id") if isinstance(q.get("id"), str) else None for q in value]
        questions = [self._question(i, table, ids) for i, table in enumerate(value)]
        self._check_breakdowns(value)
        if any(q is None for q in questions):
            return None
        return tuple(q for q in questions if q is not None)

    def _question(
        self, index: int, table: Mapping[str, Any], ids: list[str | None]
    ) -> Question | None:
        header = self.lines.question_line(index)

        def at(key: str) -> int:
            return self.lines.question_line(index, key)

        before = len(self.problems)
        qid = ids[index]
        name = f"question '{qid}'" if qid else f"question {index + 1}"
        self._unknown_keys(table, _QUESTION_REQUIRED + _QUESTION_OPTIONAL, name, at)
        for key in _QUESTION_REQUIRED:
            if key not in table:
                self.problem(header, f"{name}: missing '{key}'")
        self._typed(table, "id", at("id"), f"{name}: id", str)
        if qid is not None:
            if not ITEM_ID.fullmatch(qid):
                self.problem(at("id"), f"question id '{qid}' must be lowercase a-z, digits and '_'")
            if ids.index(qid) != index:
                first = self.lines.question_line(ids.index(qid))
                self.problem(at("id"), f"question id '{qid}' is used twice (first on line {first})")

        qtype: QuestionType | None = None
        type_name = self._typed(table, "type", at("type"), f"{name}: type", str)
        if type_name is not None:
            try:
                qtype = QuestionType(type_name)
            except ValueError:
                known = " | ".join(t.value for t in QuestionType)
                self.problem(
                    at("type"), f"{name}: unknown type '{type_name}' (use one of: {known})"
                )
        text = self._texts(table["text"], f"{name}: text", at("text")) if "text" in table else None

        required = self._typed(table, "required", at("required"), f"{name}: required", bool)
        choices = self._choices(index, table, name)
        choice_ids = [c.id for c in choices]
        positive = self._choice_refs(table, "positive", name, at("positive"), choice_ids)
        dont_know = self._choice_refs(table, "dont_know", name, at("dont_know"), choice_ids)
        for cid in set(positive) & set(dont_know):
            self.problem(at("dont_know"), f"{name}: choice '{cid}' is both positive and dont_know")

        low = self._typed(table, "min", at("min"), f"{name}: min", int)
        high = self._typed(table, "max", at("max"), f"{name}: max", int)
        max_length = self._typed(table, "max_length", at("max_length"), f"{name}: max_length", int)
        style = self._typed(table, "style", at("style"), f"{name}: style", str)
        show_if = self._typed(table, "show_if", at("show_if"), f"{name}: show_if", str)
        breakdown = self._typed(table, "breakdown", at("breakdown"), f"{name}: breakdown", str)
        if qtype is not None:
            self._check_type_keys(table, name, qtype, at)
        if low is not None and high is not None and low > high:
            self.problem(at("min"), f"{name}: min ({low}) is greater than max ({high})")
        if max_length is not None and max_length < 1:
            self.problem(at("max_length"), f"{name}: max_length must be 1 or more")
        if style is not None and style not in SCALE_STYLES:
            self.problem(at("style"), f"{name}: unknown style '{style}' (use smileys | numbers)")
        if breakdown is not None and breakdown not in BREAKDOWNS:
            self.problem(
                at("breakdown"),
                f"{name}: unknown breakdown '{breakdown}' (use {' | '.join(BREAKDOWNS)})",
            )
        if show_if is not None:
            self._check_show_if(show_if, name, at("show_if"), ids[:index], ids[index:])
        if qtype is not None:
            for key, problem in kind_of(qtype).check(RangeFields(low, high, style)):
                self.problem(at(key), f"{name}: {problem}")

        if len(self.problems) > before or qtype is None or text is None or qid is None:
            return None
        question = Question(
            id=qid,
            type=qtype,
            text=text,
            required=True if required is None else required,
            choices=choices,
            positive=positive,
            dont_know=dont_know,
            min=low,
            max=high,
            max_length=max_length,
            show_if=show_if,
            style=style,
            breakdown=breakdown,
            line=header,
        )
        return None if len(self.problems) > before else question

    def _check_questions_sms(self, survey: Survey) -> None:
        """Each question as the SMS channel sends it (engine + flows.render) fits the cap."""
        for index, question in enumerate(survey.questions):
            for lang in survey.languages:
                info = segment_info(render_text(question_message(survey, question, lang)))
                if info.segments > MAX_SMS_SEGMENTS:
                    self.problem(
                        self.lines.question_line(index, "text"),
                        f"question '{question.id}' in '{lang}' is {info.segments} SMS segments "
                        f"as sent ({info.units} {info.encoding} characters with its choices); "
                        f"keep it to {MAX_SMS_SEGMENTS} or fewer",
                    )

    def _check_type_keys(
        self, table: Mapping[str, Any], name: str, qtype: QuestionType, at: Any
    ) -> None:
        kind = kind_of(qtype)
        for key in TYPE_KEYS:
            if key in table and key not in kind.keys:
                if key == "choices":
                    self.problem(at(key), f"{name}: choices do not apply to {qtype.value}")
                elif key not in ("positive", "dont_know"):  # reported as unknown choice ids
                    self.problem(at(key), f"{name}: '{key}' does not apply to {qtype.value}")
        if "required" in table and not kind.records:
            self.problem(at("required"), f"{name}: 'required' does not apply to {qtype.value}")
        if kind.needs_choices and not table.get("choices"):
            self.problem(at("choices"), f"{name}: {qtype.value} needs choices")

    def _choices(self, index: int, table: Mapping[str, Any], name: str) -> tuple[Choice, ...]:
        value = table.get("choices")
        if value is None:
            return ()
        line = self.lines.question_line(index, "choices")
        if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
            self.problem(line, f"{name}: choices must be a list of {{ id = ..., text = ... }}")
            return ()
        choices: list[Choice] = []
        seen: dict[str, int] = {}
        for j, item in enumerate(value):
            at = self.lines.choice_line(index, j)
            self._unknown_keys(item, _CHOICE_KEYS, f"{name}, choice {j + 1}", lambda _k, n=at: n)
            cid = item.get("id")
            if not isinstance(cid, str):
                self.problem(at, f"{name}: choice {j + 1} needs an id (a text)")
                continue
            if not ITEM_ID.fullmatch(cid):
                self.problem(at, f"{name}: choice id '{cid}' must be lowercase a-z, digits and '_'")
            if cid in seen:
                self.problem(
                    at, f"{name}: choice id '{cid}' is used twice (first on line {seen[cid]})"
                )
                continue
            seen[cid] = at
            if "text" not in item:
                self.problem(at, f"{name}: choice '{cid}' needs a text")
                continue
            text = self._texts(item["text"], f"{name}: choice '{cid}' text", at)
            if text is not None:
                choices.append(Choice(cid, text))
        return tuple(choices)

    def _choice_refs(
        self, table: Mapping[str, Any], key: str, name: str, line: int, choice_ids: list[str]
    ) -> tuple[str, ...]:
        if key not in table:
            return ()
        refs = self._id_list(table, key, line, f"{name}: {key}")
        for ref in refs:
            if ref not in choice_ids:
                known = ", ".join(choice_ids) or "none"
                self.problem(line, f"{name}: {key} '{ref}' is not one of its choices ({known})")
        return refs

    def _check_show_if(
        self,
        source: str,
        name: str,
        line: int,
        earlier: list[str | None],
        later: list[str | None],
    ) -> None:
        try:
            expr = compile_expr(source)
        except ExprError as err:
            self.problem(line, f"{name}: show_if: {err}")
            return
        for ref in sorted(expr.names):
            if ref in earlier:
                continue
            if ref == later[0]:
                self.problem(line, f"{name}: show_if refers to the question itself ('{ref}')")
            elif ref in later:
                self.problem(
                    line, f"{name}: show_if refers to '{ref}', which is asked after this question"
                )
            else:
                self.problem(line, f"{name}: show_if refers to unknown question '{ref}'")

    def _check_breakdowns(self, questions: list[Any]) -> None:
        used: dict[str, str] = {}
        for index, table in enumerate(questions):
            kind = table.get("breakdown")
            if not isinstance(kind, str) or kind not in BREAKDOWNS:
                continue
            line = self.lines.question_line(index, "breakdown")
            qid = table.get("id")
            if kind in used:
                self.problem(line, f"breakdown '{kind}' is already set on question '{used[kind]}'")
            used[kind] = str(qid)
            qtype = table.get("type")
            allowed = ("select_one", "numeric") if kind == "age" else ("select_one",)
            if qtype not in allowed:
                self.problem(
                    line,
                    f"question '{qid}': breakdown '{kind}' needs a {' or '.join(allowed)} question",
                )


def _what_type(check: type) -> str:
    names = {bool: "true or false", int: "a whole number", str: "a text", dict: "a table"}
    return names.get(check, check.__name__)


def _closest(key: str, allowed: Sequence[str]) -> str | None:
    match = difflib.get_close_matches(key, allowed, n=1, cutoff=0.75)
    return match[0] if match else None
