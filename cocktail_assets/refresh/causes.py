"""The cause of a failed run, in one line: the underlying error, not Dagster's wrapper.

Dagster wraps what an asset, a resource or the executor raised ("Error occurred while
executing op …", resource-initialisation errors); the cause chain inside holds the project's
own exception, whose message names the setting, host, row or file. ``refresh`` prints it (exit
status 2 when it is the user's to fix) and ``status`` shows it for the last failed run.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from cocktail_assets.dagster_private import SerializableErrorInfo
from cocktail_assets.errors import CocktailAssetsError


def _user_error_names() -> set[str]:
    names: set[str] = set()
    todo: list[type] = [CocktailAssetsError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


@dataclass(frozen=True)
class Cause:
    """What made a run fail: ``message`` one line; ``user`` when it is the user's to fix."""

    message: str
    user: bool
    step: str | None = None


def _chain(error: SerializableErrorInfo) -> list[SerializableErrorInfo]:
    out: list[SerializableErrorInfo] = []
    todo: SerializableErrorInfo | None = error
    while todo is not None and len(out) < 20:
        out.append(todo)
        todo = todo.cause or todo.context
    return out


def _line(error: SerializableErrorInfo) -> str:
    text = error.message.strip()
    first = text.splitlines()[0] if text else error.cls_name or "error"
    head, sep, rest = first.partition(": ")
    if sep and error.cls_name and head.rsplit(".", 1)[-1] == error.cls_name:
        first = rest  # 'cocktail_assets.errors.ConfigError: X' -> 'X'
    return first.strip()


def cause_of_error(error: SerializableErrorInfo, step: str | None = None) -> Cause:
    """The project's own error in the chain if there is one, else the innermost error."""
    chain = _chain(error)
    users = _user_error_names()
    for item in chain:
        if item.cls_name in users:
            return Cause(_line(item), True, step)
    return Cause(_line(chain[-1]), False, step)


def _errors(record: dg.EventLogEntry) -> SerializableErrorInfo | None:
    event = record.dagster_event
    data = event.event_specific_data if event is not None else None
    for name in ("error",):
        found = getattr(data, name, None)
        if isinstance(found, SerializableErrorInfo):
            return found
    return None


def failure_cause(instance: dg.DagsterInstance, run_id: str) -> Cause | None:
    """The cause of run ``run_id``'s failure: a step's error first, then the run's own."""
    step_causes: list[Cause] = []
    run_causes: list[Cause] = []
    message: str | None = None
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        error = _errors(record)
        if event.event_type == dg.DagsterEventType.STEP_FAILURE and error is not None:
            step_causes.append(cause_of_error(error, event.step_key))
        elif error is not None:
            run_causes.append(cause_of_error(error))
        elif event.event_type == dg.DagsterEventType.RUN_FAILURE and event.message:
            message = event.message
    for causes in (step_causes, run_causes):
        user = [c for c in causes if c.user]
        if user or causes:
            return (user or causes)[0]
    if message:
        return Cause(message.strip().splitlines()[0], False)
    return None
