"""Survey files on disk: find and read them, then load them with the pure loader
(`flows.loader.load_sources`), which does no I/O of its own."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from flows.loader import LoadResult, Problem, Source, SurveyFileError, load_sources
from flows.model import Survey

__all__ = ["load_paths", "load_survey_file", "read_sources"]


def load_paths(paths: Sequence[Path], placeholders: Mapping[str, str] | None = None) -> LoadResult:
    """Load survey files and folders (every *.toml inside, sorted), checking across files too;
    `placeholders` as in `flows.loader.load_survey_text`."""
    return load_sources(read_sources(paths), placeholders)


def load_survey_file(path: Path, placeholders: Mapping[str, str] | None = None) -> Survey:
    """Load one survey file; raises SurveyFileError (also for unreadable files)."""
    result = load_sources([_read(path)], placeholders)
    if result.problems:
        raise SurveyFileError(list(result.problems))
    return result.surveys[0]


def read_sources(paths: Sequence[Path]) -> list[Source]:
    """The texts of the survey files named, a folder giving every *.toml in it (sorted); each
    file once, and a problem for what cannot be found or read."""
    return [file if isinstance(file, Source) else _read(file) for file in _expand(paths)]


def _expand(paths: Sequence[Path]) -> Iterator[Path | Source]:
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.glob("*.toml") if p.is_file())
        elif path.is_file():
            files = [path]
        else:
            yield Source(str(path), problem=Problem(str(path), 0, "no such file or folder"))
            continue
        for file in files:
            if file.resolve() not in seen:  # a file named on its own and inside a folder
                seen.add(file.resolve())
                yield file


def _read(path: Path) -> Source:
    name = str(path)
    try:
        return Source(name, path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        return Source(name, problem=Problem(name, 0, f"not UTF-8 text: {err.reason}"))
    except OSError as err:
        return Source(name, problem=Problem(name, 0, f"cannot read: {err.strerror}"))
