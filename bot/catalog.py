"""The surveys the service knows: loaded from survey files, every version stored in the database."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from bot.survey_files import load_paths
from flows.answers import normalize
from flows.loader import LoadResult, checksum, survey_definition, survey_from_definition
from flows.model import Survey
from storage import executor, repo_surveys
from storage.sqlexec import Exec

log = logging.getLogger(__name__)


def _read(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """A loaded survey and the row id of its stored version."""

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
        self._by_keyword: dict[str, CatalogEntry] = {}
        self._placeholders = dict(placeholders or {})

    @property
    def surveys(self) -> list[Survey]:
        """The latest version of every survey, sorted by id."""
        return sorted((e.survey for e in self._latest.values()), key=lambda s: s.id)

    def latest(self, survey_id: str) -> CatalogEntry | None:
        """The latest version of `survey_id` with its version row id; None for an unknown survey."""
        return self._latest.get(survey_id)

    def by_keyword(self, text: str) -> CatalogEntry | None:
        """The survey a message that is only its keyword starts (case and diacritics ignored)."""
        if len(text) > 64:
            return None
        word = normalize(text)
        return self._by_keyword.get(word) if word else None

    # -- what turn decisions read (bot.inbound.decide.Catalog) --

    def latest_survey(self, survey_id: str) -> tuple[Survey, int] | None:
        """The latest version of a survey and its stored version id."""
        entry = self._latest.get(survey_id)
        return (entry.survey, entry.version_id) if entry else None

    def keyword_survey(self, text: str) -> tuple[Survey, int] | None:
        """The survey whose keyword the whole message is, and its version id."""
        entry = self.by_keyword(text)
        return (entry.survey, entry.version_id) if entry else None

    def cached_version(self, version_id: int) -> Survey:
        """A version already in memory (see `ensure_version`)."""
        return self._by_version_id[version_id]

    def ensure_version(self, x: Exec, version_id: int) -> Survey:
        """A stored version, read inside a turn's transaction if it is not in memory yet."""
        survey = self._by_version_id.get(version_id)
        if survey is None:
            stored = executor.survey_version(x, version_id)
            if stored is None:
                raise LookupError(f"survey version {version_id} is not stored")
            definition, source = stored
            survey = survey_from_definition(
                definition, source=source, placeholders=self._placeholders
            )
            self._by_version_id[version_id] = survey
        return survey

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
        self._by_keyword = {}
        for entry in self._latest.values():
            for keyword in entry.survey.keywords:
                self._by_keyword.setdefault(normalize(keyword), entry)
        for problem in result.problems:
            log.warning("survey file problem: %s", problem)
        return result
