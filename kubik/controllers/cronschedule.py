"""When a CronJob schedule fires: robfig/cron's standard schedules, as upstream reads them.

Whether a schedule is well formed (and the error wording when it is not) is
`kubik.api.kinds.cron`'s business; this module turns a valid schedule into
the sets of minutes, hours, days, months and weekdays it names and finds the
next time after a given instant, in the schedule's time zone:

- five fields, names and ranges and steps, or an @descriptor (@hourly, @daily…);
- "TZ=<zone> " or "CRON_TZ=<zone> " in front names the zone (UTC otherwise);
- "@every <Go duration>" fires at a constant interval of whole seconds;
- as robfig/cron, when both day of month and day of week are restricted (neither
  starts with `*` or `?`), a day matching either one fires;
- no firing within five years of the start means never (None).
"""

from __future__ import annotations

import datetime
import re
import zoneinfo
from dataclasses import dataclass

from kubik.api.kinds.cron import ScheduleError, schedule_problem

UTC = datetime.UTC
_MONTHS = {
    m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())
}
_WEEKDAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
# (minimum, maximum, names) of minute, hour, day of month, month, day of week.
_BOUNDS = ((0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (0, 6, _WEEKDAYS))
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_SEARCH_YEARS = 5


@dataclass(frozen=True)
class CronSchedule:
    """A five-field schedule, expanded; `*_star` tell whether a day field was unrestricted."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_star: bool
    weekdays_star: bool
    zone: datetime.tzinfo = UTC

    def next(self, after: datetime.datetime) -> datetime.datetime | None:
        """The first firing strictly after `after` (an aware datetime), or None."""
        wall = after.astimezone(self.zone).replace(tzinfo=None, second=0, microsecond=0)
        wall += datetime.timedelta(minutes=1)
        while True:
            wall = self._next_wall(wall)
            if wall is None:
                return None
            fire = wall.replace(tzinfo=self.zone)
            if fire > after:  # a wall time repeated when clocks go back can fall behind
                return fire.astimezone(UTC)
            wall += datetime.timedelta(minutes=1)

    def _next_wall(self, wall: datetime.datetime) -> datetime.datetime | None:
        """The first matching wall-clock minute at or after `wall` (naive, in the zone)."""
        limit = wall.year + _SEARCH_YEARS
        while wall.year <= limit:
            if wall.month not in self.months:
                year, month = divmod(wall.month, 12)
                wall = datetime.datetime(wall.year + year, month + 1, 1)
            elif not self._day_matches(wall):
                wall = datetime.datetime.combine(wall.date(), datetime.time())
                wall += datetime.timedelta(days=1)
            elif wall.hour not in self.hours:
                wall = wall.replace(minute=0) + datetime.timedelta(hours=1)
            elif wall.minute not in self.minutes:
                wall += datetime.timedelta(minutes=1)
            else:
                return wall
        return None

    def _day_matches(self, wall: datetime.datetime) -> bool:
        in_days = wall.day in self.days
        in_weekdays = (wall.isoweekday() % 7) in self.weekdays
        if self.days_star or self.weekdays_star:
            return in_days and in_weekdays
        return in_days or in_weekdays


@dataclass(frozen=True)
class EverySchedule:
    """`@every <duration>`: the start of the second after, plus a whole number of seconds."""

    seconds: int

    def next(self, after: datetime.datetime) -> datetime.datetime:
        return after.replace(microsecond=0) + datetime.timedelta(seconds=self.seconds)


Schedule = CronSchedule | EverySchedule


def parse(spec: str) -> Schedule:
    """The schedule `spec` names; ScheduleError (robfig's words) when it is not one."""
    problem = schedule_problem(spec)
    if problem:
        raise ScheduleError(problem)
    zone: datetime.tzinfo = UTC
    if spec.startswith(("TZ=", "CRON_TZ=")):
        prefix, _, spec = spec.partition(" ")
        zone = zoneinfo.ZoneInfo(prefix.partition("=")[2])
        spec = spec.strip()
    if spec.startswith("@every "):
        return EverySchedule(max(1, int(_go_duration(spec[len("@every ") :]))))
    fields = _DESCRIPTORS.get(spec, spec).split()
    expanded = [_field(text, *bounds) for text, bounds in zip(fields, _BOUNDS, strict=True)]
    (minutes, _), (hours, _), (days, days_star), (months, _), (weekdays, weekdays_star) = expanded
    return CronSchedule(minutes, hours, days, months, weekdays, days_star, weekdays_star, zone)


def _field(text: str, low: int, high: int, names: dict[str, int]) -> tuple[frozenset[int], bool]:
    """The values of one (valid) field, and whether it is unrestricted (`*`/`?` without a step)."""
    values: set[int] = set()
    star = False
    for expression in filter(None, text.split(",")):
        span, _, step_text = expression.partition("/")
        step = int(step_text) if step_text else 1
        if span in ("*", "?"):
            start, end = low, high
            star = star or step == 1
        else:
            first, _, last = span.partition("-")
            start = _number(first, names)
            end = _number(last, names) if last else (high if step_text else start)
        values.update(range(start, end + 1, step))
    return frozenset(values), star


def _number(text: str, names: dict[str, int]) -> int:
    return names[text.lower()] if text.lower() in names else int(text)


def _go_duration(text: str) -> float:
    """Seconds in a Go duration string ("1h30m", "1.5s", "0"); negative ones count as 0."""
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    seconds = sum(float(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(body))
    return max(0.0, sign * seconds)
