"""`privacy.suppression` chooses the rule every results output uses."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings

KEY = {"BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY": "test-pseudonym-key-0123456789abcdef"}


@pytest.mark.parametrize(("value", "expected"), [(None, "groups"), ("cells", "cells")])
def test_suppression_setting(value: str | None, expected: str) -> None:
    env = dict(KEY)
    if value is not None:
        env["BRUKARDIALOG__PRIVACY__SUPPRESSION"] = value
    assert load_settings(None, env).privacy.suppression == expected


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(ConfigError, match=r'privacy\.suppression must be "groups" or "cells"'):
        load_settings(None, {**KEY, "BRUKARDIALOG__PRIVACY__SUPPRESSION": "rows"})
