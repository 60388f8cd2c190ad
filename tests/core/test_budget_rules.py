"""The budget rules a refusal and the admin views are built from: which UTC period a moment falls in (a month
rolls over into the next year), money shown as operators write it, and amounts refused with a reason."""
from datetime import datetime, timezone

import pytest

from cbgate.core.budgets import format_amount, parse_amount, period_bounds


def ts(*parts) -> float:
    return datetime(*parts, tzinfo=timezone.utc).timestamp()


def test_periods_are_utc_days_and_months_and_a_total_never_ends():
    now = ts(2026, 12, 31, 23, 59, 59)
    assert period_bounds("day", now) == (ts(2026, 12, 31), ts(2027, 1, 1))
    assert period_bounds("month", now) == (ts(2026, 12, 1), ts(2027, 1, 1))
    assert period_bounds("month", ts(2027, 1, 1)) == (ts(2027, 1, 1), ts(2027, 2, 1))
    assert period_bounds("month", ts(2028, 2, 29, 12)) == (ts(2028, 2, 1), ts(2028, 3, 1))
    assert period_bounds("total", now) == (0.0, None)


def test_money_reads_as_written_and_is_exact():
    assert [format_amount(m) for m in (12_500_000, 1000, 1, 0, 10_000_000)] == [
        "12.50", "0.001", "0.000001", "0.00", "10.00"]
    assert parse_amount("12.50") == 12_500_000 and parse_amount(3) == 3_000_000 and parse_amount("0.000001") == 1
    for bad in ("0", "-1", "1e400", "nan", "0.0000001", "x", True, None, 10 ** 10):
        with pytest.raises(ValueError):
            parse_amount(bad)
