"""runner/cron.py: cron(8)'s reading of five fields and macros, the latest slot at or before a time,
the next one after it, and one-line errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mcp_kscan.runner.cron import Cron, CronError


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "now", "latest", "following"),
    [
        ("0 */6 * * *", "2026-12-01T13:59", "2026-12-01T12:00", "2026-12-01T18:00"),
        ("0 */6 * * *", "2026-12-01T12:00", "2026-12-01T12:00", "2026-12-01T18:00"),  # a slot is its own latest
        ("@daily", "2026-12-01T00:30", "2026-12-01T00:00", "2026-12-02T00:00"),
        ("@hourly", "2026-12-01T10:59:59", "2026-12-01T10:00", "2026-12-01T11:00"),
        ("@weekly", "2026-12-01T10:00", "2026-11-29T00:00", "2026-12-06T00:00"),  # Sundays
        ("@monthly", "2026-12-15T00:00", "2026-12-01T00:00", "2027-01-01T00:00"),
        ("@yearly", "2026-12-15T00:00", "2026-01-01T00:00", "2027-01-01T00:00"),
        ("30 2 * * mon-fri", "2026-12-06T12:00", "2026-12-04T02:30", "2026-12-07T02:30"),  # Sun -> Fri, Mon
        ("0 0 * * 7", "2026-12-01T00:00", "2026-11-29T00:00", "2026-12-06T00:00"),  # 7 is Sunday too
        ("15,45 8-9 * JAN,dec *", "2026-12-01T09:50", "2026-12-01T09:45", "2026-12-02T08:15"),
        ("5/20 * * * *", "2026-12-01T10:30", "2026-12-01T10:25", "2026-12-01T10:45"),  # 5, 25, 45
        ("0 0 29 2 *", "2027-06-01T00:00", "2024-02-29T00:00", "2028-02-29T00:00"),  # leap days only
        # Both day fields restricted: either matches (the 13th, or any Friday), as cron does.
        ("0 0 13 * 5", "2026-12-10T00:00", "2026-12-04T00:00", "2026-12-11T00:00"),
        # A day field starting with * counts as unrestricted: then both must match (Vixie cron).
        ("0 0 */2 * 5", "2026-12-10T00:00", "2026-11-27T00:00", "2026-12-11T00:00"),
    ],
)
def test_latest_and_following_slots(expr: str, now: str, latest: str, following: str) -> None:
    cron = Cron.parse(expr)
    assert cron.latest(at(now)) == at(latest)
    assert cron.following(at(now)) == at(following)


def test_macros_spell_their_fields() -> None:
    assert Cron.parse("@midnight").text == "0 0 * * *"
    assert Cron.parse("@annually") == Cron.parse("@yearly")
    assert Cron.parse("  0   3 * * *  ").text == "0 3 * * *"


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 0 * *", "'0 0 * *' has 4 fields; cron takes five (minute hour day-of-month month day-of-week)"),
        ("0 0 0 * * *", "has 6 fields; cron takes five"),
        ("@reboot", "unknown macro '@reboot'; use one of @yearly"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("0 24 * * *", "hour: 24 is outside 0-23"),
        ("0 0 0 * *", "day of month: 0 is outside 1-31"),
        ("0 0 * 13 *", "month: 13 is outside 1-12"),
        ("0 0 * * 8", "day of week: 8 is outside 0-7"),
        ("0 0 * foo *", "month: 'foo' is not a number or a name"),
        ("x * * * *", "minute: 'x' is not a number"),
        ("*/0 * * * *", "minute: step '0' is not a positive number"),
        ("0 5-2 * * *", "hour: range '5-2' runs backwards"),
        ("0,,5 * * * *", "minute: empty item in '0,,5'"),
        ("0 0 31 4 *", "never fires: no month in it has that day"),
        ("0 0 L * *", "day of month: 'L' is not a number"),  # Quartz extensions are refused
        ("0 0 ? * *", "day of month: '?' is not a number"),
    ],
)
def test_bad_expressions_say_what_is_wrong_in_one_line(expr: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        Cron.parse(expr)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_restricted_weekday_saves_an_impossible_day() -> None:
    cron = Cron.parse("0 0 31 4 1")  # 31 April never comes, but every Monday in April does
    assert cron.following(at("2027-03-31T00:00")) == at("2027-04-05T00:00")
