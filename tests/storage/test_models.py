"""UTCDateTime's SQLite shortcut stores and reads exactly what SQLAlchemy's own way does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import TypeDecorator
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from storage.models import UTCDateTime

DIALECT = SQLiteDialect_pysqlite()
TYPE: Any = UTCDateTime().dialect_impl(DIALECT)
FAST_BIND: Any = TYPE.bind_processor(DIALECT)
FAST_RESULT: Any = TYPE.result_processor(DIALECT, None)
USUAL_BIND: Any = TypeDecorator.bind_processor(TYPE, DIALECT)
USUAL_RESULT: Any = TypeDecorator.result_processor(TYPE, DIALECT, None)

aware = st.builds(
    lambda moment, minutes: moment.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=-23 * 60, max_value=23 * 60),
)


@given(aware, aware)
def test_the_shortcut_stores_and_reads_what_sqlalchemy_does(
    value: datetime, other: datetime
) -> None:
    assert FAST_BIND is not None and USUAL_BIND is not None
    stored = FAST_BIND(value)
    assert stored == USUAL_BIND(value)
    # The last value's text is kept: binding another in between, or the same again, changes
    # nothing.
    assert FAST_BIND(other) == USUAL_BIND(other)
    assert FAST_BIND(value) == stored == FAST_BIND(value)
    assert FAST_RESULT(stored) == USUAL_RESULT(stored) == value
    assert FAST_RESULT(stored).tzinfo is UTC


def test_none_naive_and_odd_text() -> None:
    assert FAST_BIND(None) is None and FAST_RESULT(None) is None
    with pytest.raises(ValueError, match="naive"):
        FAST_BIND(datetime(2026, 1, 1))
    # Text SQLite wrote itself (CURRENT_TIMESTAMP) has no fraction; read the same both ways.
    assert FAST_RESULT("2026-03-02 09:30:00") == USUAL_RESULT("2026-03-02 09:30:00")
    assert FAST_RESULT("2026-03-02 09:30:00") == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
