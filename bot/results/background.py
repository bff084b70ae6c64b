"""Which background attributes may go on row-level (raw) exports.

A raw export has one row per answer under a pseudonymous respondent id. Put gender, target
group, unit, age group and language on those rows and, with 15 people, an open answer points
at the one woman over 65 in unit North. So an attribute goes on raw rows only when every
combination of the included attributes' values present among the exported respondents is
shared by at least k of them (k-anonymity over the attributes; "not known" counts as a value).

When all of them together fail, attributes are left out one at a time, the one with the most
distinct values first (it splits people finest; ties: unit, target group, age group, contact
length, gender, language), until the rest pass or none is left. What was left out, and why, is
written into the export itself (`RawAttributes.note`): a comment line before the CSV header, an
"About the answers" sheet in the XLSX, the descriptor of a FLOIP package.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from bot.results.aggregate import ResponseRecord
from flows.model import base_language

__all__ = ["ATTRIBUTE_COLUMNS", "RawAttributes", "all_attributes", "raw_attributes"]

ATTRIBUTE_COLUMNS: Final = (
    "gender",
    "target_group",
    "unit",
    "contact_length",
    "age_group",
    "language",
)
_DROP_FIRST: Final = ("unit", "target_group", "age_group", "contact_length", "gender", "language")

_NOTES: Final[Mapping[str, Mapping[str, str]]] = {
    "sv": {
        "left_out": (
            "Bakgrundsuppgifter som inte finns med på raderna: {names}. Med dem skulle någon "
            "kombination av uppgifter gälla färre än {k} personer och svar kunde knytas "
            "till en person."
        ),
        "included": "Bakgrundsuppgifter på raderna: {names}.",
        "none": "inga",
    },
    "en": {
        "left_out": (
            "Background attributes left out of the rows: {names}. With them some combination "
            "of values would be shared by fewer than {k} people and answers could be traced to "
            "a person."
        ),
        "included": "Background attributes on the rows: {names}.",
        "none": "none",
    },
    "ar": {
        "left_out": (
            "بيانات خلفية حُذفت من الصفوف: {names}. لو بقيت لكانت بعض تركيبات القيم مشتركة بين "
            "أقل من {k} أشخاص، فيمكن ربط الإجابات بشخص بعينه."
        ),
        "included": "بيانات الخلفية في الصفوف: {names}.",
        "none": "لا شيء",
    },
}


@dataclass(frozen=True, slots=True)
class RawAttributes:
    """The attributes raw rows carry, and the ones left out to keep every combination at k."""

    included: tuple[str, ...]
    left_out: tuple[str, ...] = ()
    k: int = 1

    def notes(self, lang: str, *, sep: str = ", ") -> list[str]:
        """What the export says about its attributes, in `lang` (English if not sv/en/ar);
        the texts hold no comma but `sep`, so a CSV comment line stays one field."""
        texts = _NOTES.get(base_language(lang), _NOTES["en"])
        included = sep.join(self.included) or texts["none"]
        out = [texts["included"].format(names=included)]
        if self.left_out:
            out.append(texts["left_out"].format(names=sep.join(self.left_out), k=self.k))
        return out

    def to_json(self) -> dict[str, object]:
        """The included and left-out attributes and k, for a JSON export's metadata."""
        return {"included": list(self.included), "left_out": list(self.left_out), "k": self.k}


def all_attributes() -> RawAttributes:
    """Every attribute, unchecked: for callers that did their own check (tests, k = 1)."""
    return RawAttributes(ATTRIBUTE_COLUMNS)


def raw_attributes(
    records: Iterable[ResponseRecord], k: int, candidates: Sequence[str] = ATTRIBUTE_COLUMNS
) -> RawAttributes:
    """The largest set (greedily) of `candidates` whose every combination present among
    `records` holds at least k respondents."""
    rows = [tuple(record.attributes.get(name) for name in candidates) for record in records]
    keep = list(range(len(candidates)))
    while keep:
        combos = Counter(tuple(row[i] for i in keep) for row in rows)
        if not combos or min(combos.values()) >= k:
            break
        distinct = {i: len({row[i] for row in rows}) for i in keep}
        rank = {name: r for r, name in enumerate(_DROP_FIRST)}
        drop = max(keep, key=lambda i: (distinct[i], -rank.get(candidates[i], len(rank))))
        keep.remove(drop)
    included = tuple(candidates[i] for i in keep)
    left_out = tuple(name for name in candidates if name not in included)
    return RawAttributes(included, left_out, k)
