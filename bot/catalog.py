"""The surveys the service knows: loaded from survey files, every version stored in the database."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from flows.answers import normalize
from flows.loader import (
    LoadResult,
    checksum,
    load_paths,
    survey_definition,
    survey_from_definition,
)
from flows.model import Survey
from storage import repo_surveys

log = logging.getLogger(__name__)


def _read(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    survey: Survey
    version_id: int


class SurveyCatalog:
    """Latest version of each survey by id, and any stored version by its row id.

    Survey texts may say {organisation} and {results_url}: they are filled in here, from
    `placeholders` (the configured [organisation]), whenever a survey is loaded from its file
    or from a stored version, so a changed name reaches running conversations too. Versions are
    stored as written."""

    def __init__(self, placeholders: Mapping[str, str] | None = None) -> None:
        self._latest: dict[str, CatalogEntry] = {}
        self._by_version_id: dict[int, Survey] = {}
        self._placeholders = dict(placeholders or {})

    @property
    def surveys(self) -> list[Survey]:
        return sorted((e.survey for e in self._latest.values()), key=lambda s: s.id)

    def latest(self, survey_id: str) -> CatalogEntry | None:
        return self._latest.get(survey_id)

    def by_keyword(self, text: str) -> CatalogEntry | None:
        """The survey a message that is only its keyword starts (case and diacritics ignored)."""
        word = normalize(text)
        if not word:
            return None
        for entry in self._latest.values():
            if word in (normalize(k) for k in entry.survey.keywords):
                return entry
        return None

    async def version(self, session: AsyncSession, version_id: int) -> Survey:
        """The survey as it was when a conversation started (older versions come from the DB)."""
        survey = self._by_version_id.get(version_id)
        if survey is None:
            row = await repo_surveys.get(session, version_id)
            if row is None:
                raise LookupError(f"survey version {version_id} is not stored")
            survey = survey_from_definition(
                row.definition, source=row.source, placeholders=self._placeholders
            )
            self._by_version_id[version_id] = survey
        return survey

    async def load(self, session: AsyncSession, paths: Sequence[Path]) -> LoadResult:
        """Load survey files, store new versions, and make them current. Broken files are skipped
        and returned as problems; the surveys that load are still served."""
        result = load_paths(paths, placeholders=self._placeholders)
        for survey in result.surveys:
            text = _read(survey.source)
            version_id = await repo_surveys.save_version(
                session,
                survey_id=survey.id,
                version=survey.version,
                checksum=checksum(text),
                definition=survey_definition(text),
                source=survey.source,
            )
            self._latest[survey.id] = CatalogEntry(survey, version_id)
            self._by_version_id[version_id] = survey
        for problem in result.problems:
            log.warning("survey file problem: %s", problem)
        return result
