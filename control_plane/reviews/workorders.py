"""The bad-review (差评) work order's states, actions and the one place it changes. Pure.

Every 不满意 (dissatisfied) or 非常不满意 (very dissatisfied) rating opens a work order for the
unit that handled the case. The unit calls the citizen back (回访), verifies the facts (核实),
chooses a remedy (立行立改 fix at once, 限期整改 fix by a date, 解释说明 explain), gives feedback
(反馈); the supervising level reviews it (复核) and either closes it (办结) or sends it back.
Before the remedy the unit may appeal a mis-rating (申诉); the supervising level upholds it (the
rating is voided) or rejects it (the order goes back where it was).

An order only moves by ``apply`` along ``TRANSITIONS``; each accepted action appends one
``Transition`` (who, when, note) to its history, and anything else raises
``TransitionRefusedError`` with a stable ``code``. Due dates come from the working-day calendar
elsewhere: here they are plain dates. See docs/workorders.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo

MAX_NOTE_CHARS = 2_000
"""A note is a paragraph or two for the record, not an attachment."""
UNREACHED_CALLS_BEFORE_VERIFY = 3
"""Not-reached call-backs after which the unit may verify without reaching the citizen."""
MAX_APPEALS = 1
"""Appeals per order: a rejected appeal is final (申诉只能一次), or units could stall forever."""
DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")
"""Due and fix-by dates are local calendar dates; transitions are recorded in UTC."""


class State(StrEnum):
    TO_CALL_BACK = "to_call_back"
    """待回访: opened; the unit has not reached the citizen yet."""
    CALLED_BACK = "called_back"
    """已回访: the citizen was reached; the unit verifies the facts next."""
    VERIFIED = "verified"
    """已核实: facts verified; the unit chooses a remedy (also where a send-back lands)."""
    FIXING = "fixing"
    """限期整改中: the unit fixes by ``fix_by`` and marks it fixed."""
    FIXED = "fixed"
    """已整改: fixed, at once (立行立改) or by the deadline (限期整改); feedback next."""
    EXPLAINED = "explained"
    """已解释说明: nothing to fix; the unit explained it to the citizen; feedback next."""
    FED_BACK = "fed_back"
    """已反馈: the result is fed back; the supervising level reviews it (复核)."""
    APPEALED = "appealed"
    """申诉中: the unit appealed the rating; the supervising level decides."""
    CLOSED = "closed"
    """办结: review passed. Final."""
    APPEAL_UPHELD = "appeal_upheld"
    """申诉成立: the rating was a mis-rating and is voided for scoring. Final."""


class Action(StrEnum):
    CALL_BACK = "call_back"
    """回访: a call to the citizen, reached or not (a not-reached call stays in to_call_back)."""
    VERIFY = "verify"
    """核实."""
    FIX_NOW = "fix_now"
    """立行立改: fixed on the spot."""
    SET_DEADLINE = "set_deadline"
    """限期整改: the fix needs time; carries ``fix_by``."""
    MARK_FIXED = "mark_fixed"
    """整改完成: the 限期整改 is done."""
    EXPLAIN = "explain"
    """解释说明."""
    GIVE_FEEDBACK = "give_feedback"
    """反馈."""
    APPROVE = "approve"
    """复核通过: approving is closing (办结); a separate close step would add a click, no check."""
    SEND_BACK = "send_back"
    """复核不通过: back to verified to choose a remedy again; the note is the reason."""
    APPEAL = "appeal"
    """申诉."""
    UPHOLD_APPEAL = "uphold_appeal"
    """申诉成立."""
    REJECT_APPEAL = "reject_appeal"
    """申诉驳回: back to the state the appeal came from."""


class ActorRole(StrEnum):
    UNIT = "unit"
    """The handling unit (承办单位): the hall or department whose case was rated."""
    SUPERVISOR = "supervisor"
    """The supervising level (督办/复核): reviews results and decides appeals."""


class CallOutcome(StrEnum):
    REACHED = "reached"
    NOT_REACHED = "not_reached"


class RefusalCode(StrEnum):
    """Why ``apply`` refused; the closed set behind ``TransitionRefusedError.code``."""

    ORDER_CLOSED = "order_closed"
    ILLEGAL_TRANSITION = "illegal_transition"
    WRONG_ROLE = "wrong_role"
    ACTOR_REQUIRED = "actor_required"
    NAIVE_TIME = "naive_time"
    TIME_GOES_BACKWARDS = "time_goes_backwards"
    NOTE_REQUIRED = "note_required"
    NOTE_TOO_LONG = "note_too_long"
    OUTCOME_REQUIRED = "outcome_required"
    FIX_BY_REQUIRED = "fix_by_required"
    FIX_BY_IN_PAST = "fix_by_in_past"
    FIELD_NOT_ALLOWED = "field_not_allowed"
    CALL_BACK_FIRST = "call_back_first"
    APPEAL_LIMIT = "appeal_limit"


_S = State
_A = Action

TERMINAL_STATES = frozenset({_S.CLOSED, _S.APPEAL_UPHELD})
"""Nothing moves an order out of these: reopening is not allowed; a new rating opens a new one."""
APPEALABLE_STATES = frozenset({_S.TO_CALL_BACK, _S.CALLED_BACK, _S.VERIFIED})
"""An appeal is lodged before a remedy is chosen: after that the unit has accepted the rating."""
REMEDIES = frozenset({_A.FIX_NOW, _A.SET_DEADLINE, _A.EXPLAIN})
"""The three ways out of verified: 立行立改, 限期整改, 解释说明."""

TRANSITIONS: Mapping[State, Mapping[Action, frozenset[State]]] = {
    _S.TO_CALL_BACK: {
        # Reached → called_back; not reached → stays, recorded as an attempt.
        _A.CALL_BACK: frozenset({_S.TO_CALL_BACK, _S.CALLED_BACK}),
        # Only after UNREACHED_CALLS_BEFORE_VERIFY attempts (guarded).
        _A.VERIFY: frozenset({_S.VERIFIED}),
        _A.APPEAL: frozenset({_S.APPEALED}),
    },
    _S.CALLED_BACK: {
        _A.VERIFY: frozenset({_S.VERIFIED}),
        _A.APPEAL: frozenset({_S.APPEALED}),
    },
    _S.VERIFIED: {
        _A.FIX_NOW: frozenset({_S.FIXED}),
        _A.SET_DEADLINE: frozenset({_S.FIXING}),
        _A.EXPLAIN: frozenset({_S.EXPLAINED}),
        _A.APPEAL: frozenset({_S.APPEALED}),
    },
    _S.FIXING: {_A.MARK_FIXED: frozenset({_S.FIXED})},
    _S.FIXED: {_A.GIVE_FEEDBACK: frozenset({_S.FED_BACK})},
    _S.EXPLAINED: {_A.GIVE_FEEDBACK: frozenset({_S.FED_BACK})},
    _S.FED_BACK: {
        _A.APPROVE: frozenset({_S.CLOSED}),
        _A.SEND_BACK: frozenset({_S.VERIFIED}),
    },
    _S.APPEALED: {
        _A.UPHOLD_APPEAL: frozenset({_S.APPEAL_UPHELD}),
        _A.REJECT_APPEAL: APPEALABLE_STATES,
    },
    _S.CLOSED: {},
    _S.APPEAL_UPHELD: {},
}
"""For each state, the actions it takes and the states each may lead to."""

_UNIT, _SUPERVISOR = ActorRole.UNIT, ActorRole.SUPERVISOR
ACTION_ROLES: Mapping[Action, ActorRole] = {
    _A.CALL_BACK: _UNIT,
    _A.VERIFY: _UNIT,
    _A.FIX_NOW: _UNIT,
    _A.SET_DEADLINE: _UNIT,
    _A.MARK_FIXED: _UNIT,
    _A.EXPLAIN: _UNIT,
    _A.GIVE_FEEDBACK: _UNIT,
    _A.APPEAL: _UNIT,
    _A.APPROVE: _SUPERVISOR,
    _A.SEND_BACK: _SUPERVISOR,
    _A.UPHOLD_APPEAL: _SUPERVISOR,
    _A.REJECT_APPEAL: _SUPERVISOR,
}
"""Who takes each action: the unit does the work, the supervising level judges it."""


class TransitionRefusedError(ValueError):
    """An action the order refuses; ``code`` is a stable word for the API and the CLI."""

    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Command:
    """One action on an order, as a person asks for it; fields beyond ``note`` per action."""

    action: Action
    actor: str
    """Who acts (a staff or account id); recorded, not checked against anything here."""
    role: ActorRole
    at: datetime
    """Aware; recorded in UTC."""
    note: str
    outcome: CallOutcome | None = None
    """``call_back`` only, and required there."""
    fix_by: date | None = None
    """``set_deadline`` only, and required there: a local date not before ``at``'s."""


@dataclass(frozen=True, slots=True)
class Transition:
    """One accepted action in an order's history."""

    action: Action
    from_state: State
    to_state: State
    actor: str
    role: ActorRole
    at: datetime
    note: str
    outcome: CallOutcome | None = None
    fix_by: date | None = None


@dataclass(frozen=True, slots=True)
class WorkOrder:
    """One bad review's work order; the database that names it lives elsewhere."""

    due: date
    """The local date by which it must be closed (working days are counted elsewhere)."""
    opened_at: datetime
    """Aware; no action may be earlier."""
    state: State = State.TO_CALL_BACK
    fix_by: date | None = None
    """The 限期整改 date while ``fixing`` and after; cleared by a send-back."""
    history: tuple[Transition, ...] = ()
    appealed_from: State | None = None
    """The state an appeal was lodged from, while it is ``appealed``; None otherwise."""
    voided: bool = False
    """The rating does not count for scoring (申诉成立)."""

    def __post_init__(self) -> None:
        # Broken invariants here are a programming or storage error, not a person's refusal.
        if self.opened_at.utcoffset() is None:
            msg = f"opened_at must carry a time zone: {self.opened_at.isoformat()}"
            raise ValueError(msg)
        appealing = self.state is _S.APPEALED
        if appealing != (self.appealed_from in APPEALABLE_STATES):
            msg = f"a {self.state} order cannot have appealed_from={self.appealed_from}"
            raise ValueError(msg)


def apply(order: WorkOrder, command: Command, *, zone: tzinfo = DEFAULT_ZONE) -> WorkOrder:
    """``order`` after ``command``, with its transition recorded; ``zone`` dates ``fix_by``."""
    _check_allowed(order, command)
    note = _checked_note(command)
    at = _checked_time(order, command)
    _check_fields(command, at, zone)
    _check_guard(order, command.action)
    target = _target(order, command)
    record = Transition(
        command.action,
        order.state,
        target,
        command.actor,
        command.role,
        at,
        note,
        command.outcome,
        command.fix_by,
    )
    return dataclasses.replace(
        order,
        state=target,
        fix_by=_fix_by_after(order, command),
        history=(*order.history, record),
        appealed_from=order.state if command.action is _A.APPEAL else None,
        voided=order.voided or target is _S.APPEAL_UPHELD,
    )


def allowed_actions(order: WorkOrder, role: ActorRole) -> list[Action]:
    """The actions ``role`` may take on ``order`` now, in declaration order (for UIs)."""
    return [
        action
        for action in TRANSITIONS[order.state]
        if ACTION_ROLES[action] is role and _guard_refusal(order, action) is None
    ]


def _check_allowed(order: WorkOrder, command: Command) -> None:
    state, action = order.state, command.action
    if state in TERMINAL_STATES:
        msg = f"the order is {state} and final: a closed order cannot be reopened"
        raise TransitionRefusedError(RefusalCode.ORDER_CLOSED, msg)
    takes = TRANSITIONS[state]
    if action not in takes:
        msg = f"a {state} order cannot take {action} (allowed: {_names(takes)})"
        raise TransitionRefusedError(RefusalCode.ILLEGAL_TRANSITION, msg)
    if ACTION_ROLES[action] is not command.role:
        mine = [a for a in takes if ACTION_ROLES[a] is command.role]
        msg = (
            f"{action} is for the {ACTION_ROLES[action]}, not the {command.role} "
            f"(the {command.role} may take on a {state} order: {_names(mine)})"
        )
        raise TransitionRefusedError(RefusalCode.WRONG_ROLE, msg)
    if not command.actor.strip():
        msg = f"{action} needs the actor who takes it"
        raise TransitionRefusedError(RefusalCode.ACTOR_REQUIRED, msg)


def _checked_note(command: Command) -> str:
    note = command.note.strip()
    if not note:
        msg = f"{command.action} needs a note saying what was done"
        raise TransitionRefusedError(RefusalCode.NOTE_REQUIRED, msg)
    if len(note) > MAX_NOTE_CHARS:
        msg = f"the note has {len(note)} characters; at most {MAX_NOTE_CHARS}"
        raise TransitionRefusedError(RefusalCode.NOTE_TOO_LONG, msg)
    return note


def _checked_time(order: WorkOrder, command: Command) -> datetime:
    if command.at.utcoffset() is None:
        msg = f"the time of {command.action} must carry a time zone: {command.at.isoformat()}"
        raise TransitionRefusedError(RefusalCode.NAIVE_TIME, msg)
    last = order.history[-1].at if order.history else order.opened_at
    # Equal times are fine (two quick clicks); earlier ones would reorder the history.
    if command.at < last:
        msg = f"{command.action} at {command.at.isoformat()} is before {last.isoformat()}"
        raise TransitionRefusedError(RefusalCode.TIME_GOES_BACKWARDS, msg)
    return command.at.astimezone(UTC)


def _check_fields(command: Command, at: datetime, zone: tzinfo) -> None:
    action = command.action
    if command.outcome is not None and action is not _A.CALL_BACK:
        msg = f"an outcome belongs to call_back, not to {action}"
        raise TransitionRefusedError(RefusalCode.FIELD_NOT_ALLOWED, msg)
    if command.fix_by is not None and action is not _A.SET_DEADLINE:
        msg = f"a fix-by date belongs to set_deadline, not to {action}"
        raise TransitionRefusedError(RefusalCode.FIELD_NOT_ALLOWED, msg)
    if action is _A.CALL_BACK and command.outcome is None:
        msg = "call_back needs its outcome: reached or not_reached"
        raise TransitionRefusedError(RefusalCode.OUTCOME_REQUIRED, msg)
    if action is _A.SET_DEADLINE:
        if command.fix_by is None:
            msg = "set_deadline (限期整改) needs the date to fix by"
            raise TransitionRefusedError(RefusalCode.FIX_BY_REQUIRED, msg)
        today = at.astimezone(zone).date()
        if command.fix_by < today:
            msg = f"fix-by date {command.fix_by} is before the action's date {today}"
            raise TransitionRefusedError(RefusalCode.FIX_BY_IN_PAST, msg)


def _check_guard(order: WorkOrder, action: Action) -> None:
    if refusal := _guard_refusal(order, action):
        raise refusal


def _guard_refusal(order: WorkOrder, action: Action) -> TransitionRefusedError | None:
    """The refusal a legal action still meets because of the order's history, if any."""
    if action is _A.VERIFY and order.state is _S.TO_CALL_BACK:
        tried = unreached_calls(order)
        if tried < UNREACHED_CALLS_BEFORE_VERIFY:
            msg = (
                f"call the citizen back first: verify without reaching them needs "
                f"{UNREACHED_CALLS_BEFORE_VERIFY} not-reached calls, {tried} recorded"
            )
            return TransitionRefusedError(RefusalCode.CALL_BACK_FIRST, msg)
    if action is _A.APPEAL and _count(order, _A.APPEAL) >= MAX_APPEALS:
        msg = f"this order was already appealed; at most {MAX_APPEALS} appeal per order"
        return TransitionRefusedError(RefusalCode.APPEAL_LIMIT, msg)
    return None


def _target(order: WorkOrder, command: Command) -> State:
    # An appealed order always has appealed_from (WorkOrder checks it).
    if command.action is _A.REJECT_APPEAL and order.appealed_from is not None:
        return order.appealed_from
    if command.action is _A.CALL_BACK:
        reached = command.outcome is CallOutcome.REACHED
        return _S.CALLED_BACK if reached else _S.TO_CALL_BACK
    (target,) = TRANSITIONS[order.state][command.action]
    return target


def _fix_by_after(order: WorkOrder, command: Command) -> date | None:
    if command.action is _A.SET_DEADLINE:
        return command.fix_by
    # A send-back chooses the remedy again; the old date stays in the history only.
    return None if command.action is _A.SEND_BACK else order.fix_by


def _names(actions: Iterable[Action]) -> str:
    return ", ".join(actions) or "nothing"


def _count(order: WorkOrder, action: Action) -> int:
    return sum(1 for step in order.history if step.action is action)


def is_open(order: WorkOrder) -> bool:
    return order.state not in TERMINAL_STATES


def unreached_calls(order: WorkOrder) -> int:
    """Call-backs that did not reach the citizen."""
    return sum(1 for step in order.history if step.outcome is CallOutcome.NOT_REACHED)
