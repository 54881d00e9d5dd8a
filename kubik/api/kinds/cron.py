"""CronJob schedules: the standard five-field cron format and the @descriptors.

Upstream validates a schedule by parsing it with robfig/cron's standard
parser and reports that parser's error verbatim; this module parses the
same language and words its errors the same way. It only tells what is
wrong with a schedule: working out when a schedule fires is the CronJob
controller's business.
"""

from __future__ import annotations

import re
import zoneinfo

_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
_WEEKDAYS = "sun mon tue wed thu fri sat".split()
# (minimum, maximum, names) of minute, hour, day of month, month, day of week.
_FIELDS = (
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, {month: i + 1 for i, month in enumerate(_MONTHS)}),
    (0, 6, {day: i for i, day in enumerate(_WEEKDAYS)}),
)
_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# A Go duration ("1h30m", "90s", "1.5h").
_DURATION = re.compile(r"^[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$")
_ZONE_PART = re.compile(r"^[A-Za-z.\-_0-9+]{1,14}$")
_INT64_MAX = 2**63 - 1


class ScheduleError(ValueError):
    """Not a schedule; the message is robfig/cron's."""


def schedule_problem(schedule: str) -> str:
    """What is wrong with a schedule ("" when it is fine)."""
    try:
        _parse(schedule)
    except ScheduleError as exc:
        return str(exc)
    return ""


def time_zone_problems(name: str) -> list[str]:
    """What is wrong with a CronJob's timeZone: it must name an IANA zone, not Local."""
    if not name:
        return ["timeZone must be nil or non-empty string"]
    unknown = f"unknown time zone {name}"
    for part in name.split("/"):
        if part in (".", "..") or part.startswith("-") or not _ZONE_PART.match(part):
            return [unknown]
    problems = []
    if name.lower() == "local":
        problems.append(
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
        )
    if name != "Local" and not _known_zone(name):
        problems.append(unknown)
    return problems


def _known_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _parse(spec: str) -> None:
    if not spec:
        raise ScheduleError("empty spec string")
    if spec.startswith(("TZ=", "CRON_TZ=")):
        zone, _, spec = spec.partition(" ")
        name = zone.partition("=")[2]
        if name == "Local" or not _known_zone(name) or not spec:
            raise ScheduleError(f"provided bad location {name}: unknown time zone {name}")
        spec = spec.strip()
    if spec.startswith("@"):
        _descriptor(spec)
        return
    fields = spec.split()
    if len(fields) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    for text, bounds in zip(fields, _FIELDS, strict=True):
        for expression in (part for part in text.split(",") if part):
            _range(expression, *bounds)


def _descriptor(spec: str) -> None:
    if spec in _DESCRIPTORS:
        return
    if spec.startswith("@every "):
        duration = spec[len("@every ") :]
        if duration != "0" and not _DURATION.match(duration):
            raise ScheduleError(
                f'failed to parse duration {spec}: time: invalid duration "{duration}"'
            )
        return
    raise ScheduleError(f"unrecognized descriptor: {spec}")


def _range(expression: str, low: int, high: int, names: dict[str, int]) -> None:
    range_and_step = expression.split("/")
    low_and_high = range_and_step[0].split("-")
    if low_and_high[0] in ("*", "?"):
        start, end = low, high
    else:
        start = _int_or_name(low_and_high[0], names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _int_or_name(low_and_high[1], names)
        else:
            raise ScheduleError(f"too many hyphens: {expression}")
    if len(range_and_step) == 2:
        step = _int(range_and_step[1])
        if len(low_and_high) == 1:
            end = high  # "N/step" means "N-max/step"
    elif len(range_and_step) > 2:
        raise ScheduleError(f"too many slashes: {expression}")
    else:
        step = 1
    if start < low:
        raise ScheduleError(f"beginning of range ({start}) below minimum ({low}): {expression}")
    if end > high:
        raise ScheduleError(f"end of range ({end}) above maximum ({high}): {expression}")
    if start > end:
        raise ScheduleError(
            f"beginning of range ({start}) beyond end of range ({end}): {expression}"
        )
    if step == 0:
        raise ScheduleError(f"step of range should be a positive number: {expression}")


def _int_or_name(text: str, names: dict[str, int]) -> int:
    if text.lower() in names:
        return names[text.lower()]
    return _int(text)


def _int(text: str) -> int:
    """Go's strconv.Atoi, with its error wording, then cron's "no negatives" rule."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ScheduleError(
            f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax'
        )
    number = int(text)
    if abs(number) > _INT64_MAX:
        raise ScheduleError(
            f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": value out of range'
        )
    if number < 0:
        raise ScheduleError(f"negative number ({number}) not allowed: {text}")
    return number
