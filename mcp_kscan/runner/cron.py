"""Cron expressions as cron(8) and Kubernetes CronJobs read them, in UTC, to the minute.

Five fields (minute hour day-of-month month day-of-week) with ``*``, lists, ranges, ``/`` steps,
month and weekday names (JAN-DEC, SUN-SAT; 0 and 7 are Sunday), and the macros @yearly
(@annually), @monthly, @weekly, @daily (@midnight) and @hourly. Day-of-month and day-of-week
follow Vixie cron: when both are restricted (neither starts with ``*``) a day matches either.

Why our own 150 lines and not a library: croniter, the usual choice, is no longer maintained,
and what a schedule needs here is small and must be exact: the latest slot at or before a time
(a replica that was down decides what it missed) and errors of one line that name the field.
Quartz's extensions (seconds, ``?``, ``L``, ``W``, ``#``) and time zones are refused, not guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names mapped to numbers)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {n: i + 1 for i, n in enumerate(_MONTHS)}),
    ("day of week", 0, 7, {n: i for i, n in enumerate(_DAYS)}),
)
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February as in a leap year
# Feb 29 under a weekday-free expression comes back within 8 years (1900/2100 skip a leap year).
_SEARCH_DAYS = 8 * 366 + 1


class CronError(ValueError):
    """A cron expression that cannot be used; the message is one line and names the field."""


def _number(text: str, field: str, low: int, high: int, names: dict[str, int]) -> int:
    value = names.get(text.lower())
    if value is None:
        if not text.isdigit():
            raise CronError(f"{field}: {text!r} is not a number{' or a name' if names else ''}")
        value = int(text)
    if not low <= value <= high:
        raise CronError(f"{field}: {value} is outside {low}-{high}")
    return value


def _parse_field(text: str, index: int) -> frozenset[int]:
    field, low, high, names = _FIELDS[index]
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{field}: empty item in {text!r}")
        span, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field}: step {step_text!r} is not a positive number")
            step = int(step_text)
        if span == "*":
            start, end = low, high
        elif "-" in span:
            a, _, b = span.partition("-")
            start, end = _number(a, field, low, high, names), _number(b, field, low, high, names)
            if start > end:
                raise CronError(f"{field}: range {span!r} runs backwards")
        else:
            start = _number(span, field, low, high, names)
            end = high if step_text else start  # "5/15" is 5, 20, 35, 50 (cronie's reading)
        values.update(range(start, end + 1, step))
    if index == 4 and 7 in values:  # both 0 and 7 are Sunday
        values.discard(7)
        values.add(0)
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A parsed expression; ``latest``/``following`` find its slots (aware UTC datetimes, whole minutes)."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 = Sunday."""
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> Cron:
        spec = text.strip()
        fields = MACROS.get(spec.lower(), spec).split()
        if spec.startswith("@") and spec.lower() not in MACROS:
            raise CronError(f"unknown macro {spec!r}; use one of {', '.join(MACROS)} or five fields")
        if len(fields) != 5:
            raise CronError(
                f"{spec!r} has {len(fields)} fields; cron takes five (minute hour day-of-month month day-of-week)"
            )
        parsed = [_parse_field(f, i) for i, f in enumerate(fields)]
        cron = cls(
            text=" ".join(fields),
            minutes=parsed[0],
            hours=parsed[1],
            days=parsed[2],
            months=parsed[3],
            weekdays=parsed[4],
            any_day=fields[2].startswith("*"),
            any_weekday=fields[4].startswith("*"),
        )
        if not cron.any_weekday or any(d <= _DAYS_IN_MONTH[m - 1] for m in cron.months for d in cron.days):
            return cron
        raise CronError(f"{spec!r} never fires: no month in it has that day")

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = day.isoweekday() % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return in_days and in_weekdays
        return in_days or in_weekdays

    def _times(self) -> list[time]:
        return [time(h, m) for h in sorted(self.hours) for m in sorted(self.minutes)]

    def latest(self, at: datetime) -> datetime | None:
        """The latest slot at or before ``at`` (None if there was none in the last eight years)."""
        at = at.astimezone(UTC)
        times = self._times()
        day = at.date()
        for back in range(_SEARCH_DAYS):
            if self.day_matches(day):
                for t in reversed(times):
                    slot = datetime.combine(day, t, UTC)
                    if slot <= at:
                        return slot
            day -= timedelta(days=1)
            if back == 0:
                at = datetime.combine(day, time.max, UTC)
        return None

    def following(self, at: datetime) -> datetime:
        """The first slot strictly after ``at``."""
        at = at.astimezone(UTC)
        times = self._times()
        day = at.date()
        for _ in range(_SEARCH_DAYS):
            if self.day_matches(day):
                for t in times:
                    slot = datetime.combine(day, t, UTC)
                    if slot > at:
                        return slot
            day += timedelta(days=1)
        raise CronError(f"{self.text!r} never fires")  # parse() refuses such expressions
