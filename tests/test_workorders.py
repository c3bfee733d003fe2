"""The bad-review work order: every legal and illegal move, roles, fields, appeals, statistics."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.reviews.workorder_stats import (
    callback_rate,
    called_back,
    closed_at,
    closed_within_deadline,
    is_overdue,
    remedy,
)
from control_plane.reviews.workorders import (
    ACTION_ROLES,
    MAX_NOTE_CHARS,
    TERMINAL_STATES,
    TRANSITIONS,
    Action,
    ActorRole,
    CallOutcome,
    Command,
    RefusalCode,
    State,
    Transition,
    TransitionRefusedError,
    WorkOrder,
    allowed_actions,
    apply,
    unreached_calls,
)

A, S = Action, State
UNIT, SUPERVISOR = ActorRole.UNIT, ActorRole.SUPERVISOR
REACHED, NOT_REACHED = CallOutcome.REACHED, CallOutcome.NOT_REACHED
OPENED = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 on Monday 2 March in Shanghai
DUE = date(2026, 3, 9)
FIX_BY = date(2026, 3, 5)
DOC = Path(__file__).parent.parent / "docs" / "workorders.md"

# Written from the issue, not read from the module: the module's table is checked against it.
ROLES = {
    A.CALL_BACK: UNIT,
    A.VERIFY: UNIT,
    A.FIX_NOW: UNIT,
    A.SET_DEADLINE: UNIT,
    A.MARK_FIXED: UNIT,
    A.EXPLAIN: UNIT,
    A.GIVE_FEEDBACK: UNIT,
    A.APPEAL: UNIT,
    A.APPROVE: SUPERVISOR,
    A.SEND_BACK: SUPERVISOR,
    A.UPHOLD_APPEAL: SUPERVISOR,
    A.REJECT_APPEAL: SUPERVISOR,
}


def details(action: Action, outcome: CallOutcome = REACHED) -> dict[str, Any]:
    """The fields an action needs beyond the note, well formed."""
    if action is A.CALL_BACK:
        return {"outcome": outcome}
    if action is A.SET_DEADLINE:
        return {"fix_by": FIX_BY}
    return {}


def command(order: WorkOrder, action: Action, **overrides: Any) -> Command:  # noqa: ANN401 - Command's fields
    """A well-formed command one minute after the order's last step, by the action's role."""
    last = order.history[-1].at if order.history else order.opened_at
    fields: dict[str, Any] = {
        "action": action,
        "actor": "staff-7",
        "role": ROLES[action],
        "at": last + timedelta(minutes=1),
        "note": "done as asked",
        **details(action),
    }
    fields.update(overrides)
    return Command(**fields)


def do(order: WorkOrder, action: Action, **overrides: Any) -> WorkOrder:  # noqa: ANN401 - same
    return apply(order, command(order, action, **overrides))


def refused(
    order: WorkOrder,
    action: Action,
    **overrides: Any,  # noqa: ANN401 - Command's fields
) -> TransitionRefusedError:
    with pytest.raises(TransitionRefusedError) as caught:
        do(order, action, **overrides)
    return caught.value


def fresh() -> WorkOrder:
    return WorkOrder(due=DUE, opened_at=OPENED)


_CALLED = [(A.CALL_BACK, {"outcome": REACHED})]
_VERIFIED = [*_CALLED, (A.VERIFY, {})]
_FIXING = [*_VERIFIED, (A.SET_DEADLINE, {})]
_FIXED_NOW = [*_VERIFIED, (A.FIX_NOW, {})]
_FED_BACK = [*_FIXED_NOW, (A.GIVE_FEEDBACK, {})]
_UNREACHED_3 = [(A.CALL_BACK, {"outcome": NOT_REACHED})] * 3

# Ways to reach every state (and the three appeal origins), as scripts of actions.
SCRIPTS: dict[str, list[tuple[Action, dict[str, Any]]]] = {
    "to_call_back": [],
    "to_call_back_unreached_3": _UNREACHED_3,
    "called_back": _CALLED,
    "verified": _VERIFIED,
    "fixing": _FIXING,
    "fixed_now": _FIXED_NOW,
    "fixed_by_deadline": [*_FIXING, (A.MARK_FIXED, {})],
    "explained": [*_VERIFIED, (A.EXPLAIN, {})],
    "fed_back": _FED_BACK,
    "closed": [*_FED_BACK, (A.APPROVE, {})],
    "appealed_from_to_call_back": [(A.APPEAL, {})],
    "appealed_from_called_back": [*_CALLED, (A.APPEAL, {})],
    "appealed_from_verified": [*_VERIFIED, (A.APPEAL, {})],
    "appeal_upheld": [(A.APPEAL, {}), (A.UPHOLD_APPEAL, {})],
}


def reach(name: str) -> WorkOrder:
    order = fresh()
    for action, overrides in SCRIPTS[name]:
        order = do(order, action, **overrides)
    return order


# One order in each state, for the complement of the legal table.
ONE_PER_STATE = {
    S.TO_CALL_BACK: "to_call_back",
    S.CALLED_BACK: "called_back",
    S.VERIFIED: "verified",
    S.FIXING: "fixing",
    S.FIXED: "fixed_now",
    S.EXPLAINED: "explained",
    S.FED_BACK: "fed_back",
    S.APPEALED: "appealed_from_verified",
    S.CLOSED: "closed",
    S.APPEAL_UPHELD: "appeal_upheld",
}

# (start, action, fields, the state it must lead to): every legal move.
LEGAL = [
    ("to_call_back", A.CALL_BACK, {"outcome": REACHED}, S.CALLED_BACK),
    ("to_call_back", A.CALL_BACK, {"outcome": NOT_REACHED}, S.TO_CALL_BACK),
    ("to_call_back_unreached_3", A.VERIFY, {}, S.VERIFIED),
    ("to_call_back", A.APPEAL, {}, S.APPEALED),
    ("called_back", A.VERIFY, {}, S.VERIFIED),
    ("called_back", A.APPEAL, {}, S.APPEALED),
    ("verified", A.FIX_NOW, {}, S.FIXED),
    ("verified", A.SET_DEADLINE, {"fix_by": FIX_BY}, S.FIXING),
    ("verified", A.EXPLAIN, {}, S.EXPLAINED),
    ("verified", A.APPEAL, {}, S.APPEALED),
    ("fixing", A.MARK_FIXED, {}, S.FIXED),
    ("fixed_now", A.GIVE_FEEDBACK, {}, S.FED_BACK),
    ("fixed_by_deadline", A.GIVE_FEEDBACK, {}, S.FED_BACK),
    ("explained", A.GIVE_FEEDBACK, {}, S.FED_BACK),
    ("fed_back", A.APPROVE, {}, S.CLOSED),
    ("fed_back", A.SEND_BACK, {}, S.VERIFIED),
    ("appealed_from_to_call_back", A.UPHOLD_APPEAL, {}, S.APPEAL_UPHELD),
    ("appealed_from_called_back", A.UPHOLD_APPEAL, {}, S.APPEAL_UPHELD),
    ("appealed_from_verified", A.UPHOLD_APPEAL, {}, S.APPEAL_UPHELD),
    ("appealed_from_to_call_back", A.REJECT_APPEAL, {}, S.TO_CALL_BACK),
    ("appealed_from_called_back", A.REJECT_APPEAL, {}, S.CALLED_BACK),
    ("appealed_from_verified", A.REJECT_APPEAL, {}, S.VERIFIED),
]
LEGAL_PAIRS = {(reach(start).state, action) for start, action, _, _ in LEGAL}


def _id(row: tuple[str, Action, dict[str, Any], State]) -> str:
    start, action, fields, _ = row
    return f"{start}-{action}" + "".join(f"-{v}" for v in fields.values())


# --- The tables -----------------------------------------------------------------------------


def test_every_state_is_reached_by_the_scripts() -> None:
    assert {reach(name).state for name in SCRIPTS} == set(State)
    assert {reach(name).state for name in ONE_PER_STATE.values()} == set(ONE_PER_STATE)


def test_the_roles_are_as_the_issue_states_them() -> None:
    assert ACTION_ROLES == ROLES


def test_the_declared_table_is_exactly_the_legal_moves() -> None:
    declared = {
        (state, action): targets
        for state, takes in TRANSITIONS.items()
        for action, targets in takes.items()
    }
    expected: dict[tuple[State, Action], set[State]] = {}
    for start, action, _, target in LEGAL:
        expected.setdefault((reach(start).state, action), set()).add(target)

    assert declared == expected
    assert set(TRANSITIONS) == set(State)


@pytest.mark.parametrize("row", LEGAL, ids=_id)
def test_each_legal_move_leads_where_the_table_says(
    row: tuple[str, Action, dict[str, Any], State],
) -> None:
    start, action, fields, target = row
    before = reach(start)

    after = do(before, action, **fields)

    assert after.state is target
    assert len(after.history) == len(before.history) + 1
    step = after.history[-1]
    assert (step.action, step.from_state, step.to_state) == (action, before.state, target)
    assert after.appealed_from == (before.state if action is A.APPEAL else None)


ILLEGAL = [
    (state, action) for state in State for action in Action if (state, action) not in LEGAL_PAIRS
]


def test_the_illegal_set_is_the_complement() -> None:
    assert len(ILLEGAL) + len(LEGAL_PAIRS) == len(State) * len(Action)
    assert len(LEGAL_PAIRS) == 16


@pytest.mark.parametrize(("state", "action"), ILLEGAL, ids=str)
def test_each_illegal_move_is_refused(state: State, action: Action) -> None:
    order = reach(ONE_PER_STATE[state])

    error = refused(order, action)

    if state in TERMINAL_STATES:
        assert error.code is RefusalCode.ORDER_CLOSED
        assert "cannot be reopened" in str(error)
    else:
        assert error.code is RefusalCode.ILLEGAL_TRANSITION
        assert f"a {state} order cannot take {action}" in str(error)
        for allowed in TRANSITIONS[state]:
            assert str(allowed) in str(error)


@pytest.mark.parametrize("row", LEGAL, ids=_id)
def test_each_action_refuses_the_other_role(
    row: tuple[str, Action, dict[str, Any], State],
) -> None:
    start, action, fields, _ = row
    order = reach(start)
    other = SUPERVISOR if ROLES[action] is UNIT else UNIT

    error = refused(order, action, role=other, **fields)

    assert error.code is RefusalCode.WRONG_ROLE
    assert f"{action} is for the {ROLES[action]}, not the {other}" in str(error)


ALLOWED = {
    "to_call_back": ([A.CALL_BACK, A.APPEAL], []),
    "to_call_back_unreached_3": ([A.CALL_BACK, A.VERIFY, A.APPEAL], []),
    "called_back": ([A.VERIFY, A.APPEAL], []),
    "verified": ([A.FIX_NOW, A.SET_DEADLINE, A.EXPLAIN, A.APPEAL], []),
    "fixing": ([A.MARK_FIXED], []),
    "fixed_now": ([A.GIVE_FEEDBACK], []),
    "explained": ([A.GIVE_FEEDBACK], []),
    "fed_back": ([], [A.APPROVE, A.SEND_BACK]),
    "appealed_from_called_back": ([], [A.UPHOLD_APPEAL, A.REJECT_APPEAL]),
    "closed": ([], []),
    "appeal_upheld": ([], []),
}


@pytest.mark.parametrize(("name", "expected"), ALLOWED.items())
def test_allowed_actions_per_state_and_role(
    name: str, expected: tuple[list[Action], list[Action]]
) -> None:
    order = reach(name)

    assert (allowed_actions(order, UNIT), allowed_actions(order, SUPERVISOR)) == expected


# --- Fields -----------------------------------------------------------------------------------


@pytest.mark.parametrize("row", LEGAL, ids=_id)
@pytest.mark.parametrize("note", ["", "   \n\t "])
def test_every_action_needs_a_note(
    row: tuple[str, Action, dict[str, Any], State], note: str
) -> None:
    start, action, fields, _ = row

    error = refused(reach(start), action, note=note, **fields)

    assert error.code is RefusalCode.NOTE_REQUIRED


def test_a_note_is_kept_stripped_and_up_to_its_limit() -> None:
    longest = "好" * MAX_NOTE_CHARS

    assert do(fresh(), A.APPEAL, note=f"  {longest}\n").history[-1].note == longest
    error = refused(fresh(), A.APPEAL, note=longest + "差")
    assert error.code is RefusalCode.NOTE_TOO_LONG
    assert str(MAX_NOTE_CHARS + 1) in str(error)


def test_an_action_needs_an_actor() -> None:
    assert refused(fresh(), A.APPEAL, actor=" ").code is RefusalCode.ACTOR_REQUIRED


def test_call_back_needs_its_outcome() -> None:
    error = refused(fresh(), A.CALL_BACK, outcome=None)

    assert error.code is RefusalCode.OUTCOME_REQUIRED


def test_set_deadline_needs_a_fix_by_date_not_before_the_local_day() -> None:
    order = reach("verified")
    # 17:00 UTC on 2 March is 01:00 on 3 March in Shanghai.
    evening = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)

    assert refused(order, A.SET_DEADLINE, fix_by=None).code is RefusalCode.FIX_BY_REQUIRED
    past = refused(order, A.SET_DEADLINE, at=evening, fix_by=date(2026, 3, 2))
    assert past.code is RefusalCode.FIX_BY_IN_PAST
    assert "2026-03-03" in str(past)
    same_day = do(order, A.SET_DEADLINE, at=evening, fix_by=date(2026, 3, 3))
    assert (same_day.state, same_day.fix_by) == (S.FIXING, date(2026, 3, 3))
    by_utc_day = command(order, A.SET_DEADLINE, at=evening, fix_by=date(2026, 3, 2))
    in_utc = apply(order, by_utc_day, zone=UTC)
    assert in_utc.fix_by == date(2026, 3, 2)


@pytest.mark.parametrize(
    ("action", "start", "stray"),
    [
        (A.VERIFY, "called_back", {"outcome": REACHED}),
        (A.APPEAL, "to_call_back", {"fix_by": FIX_BY}),
        (A.CALL_BACK, "to_call_back", {"fix_by": FIX_BY}),
        (A.SET_DEADLINE, "verified", {"outcome": NOT_REACHED}),
        (A.APPROVE, "fed_back", {"outcome": REACHED}),
    ],
)
def test_fields_of_another_action_are_refused(
    action: Action, start: str, stray: dict[str, Any]
) -> None:
    error = refused(reach(start), action, **stray)

    assert error.code is RefusalCode.FIELD_NOT_ALLOWED


def test_the_first_problem_in_the_documented_order_is_reported() -> None:
    order = reach("verified")
    last = order.history[-1].at
    flawed: dict[str, Any] = {
        "action": A.MARK_FIXED,
        "role": SUPERVISOR,
        "actor": "",
        "note": "",
        "at": (last - timedelta(hours=1)).replace(tzinfo=None),
        "outcome": REACHED,
        "fix_by": None,
    }
    # Each refusal, then the change that clears it and uncovers the next.
    walk: list[tuple[RefusalCode, dict[str, Any]]] = [
        (RefusalCode.ILLEGAL_TRANSITION, {"action": A.SET_DEADLINE}),
        (RefusalCode.WRONG_ROLE, {"role": UNIT}),
        (RefusalCode.ACTOR_REQUIRED, {"actor": "staff-7"}),
        (RefusalCode.NOTE_REQUIRED, {"note": "x" * (MAX_NOTE_CHARS + 1)}),
        (RefusalCode.NOTE_TOO_LONG, {"note": "限期整改"}),
        (RefusalCode.NAIVE_TIME, {"at": last - timedelta(hours=1)}),
        (RefusalCode.TIME_GOES_BACKWARDS, {"at": last}),
        (RefusalCode.FIELD_NOT_ALLOWED, {"outcome": None}),
        (RefusalCode.FIX_BY_REQUIRED, {"fix_by": date(2026, 3, 1)}),
        (RefusalCode.FIX_BY_IN_PAST, {"fix_by": FIX_BY}),
    ]
    for code, fix in walk:
        action = flawed.pop("action")
        assert refused(order, action, **flawed).code is code
        flawed = {"action": action, **flawed, **fix}

    assert do(order, **flawed).state is S.FIXING
    # The history's rules (call_back_first, appeal_limit) come last.
    assert refused(fresh(), A.VERIFY, outcome=REACHED).code is RefusalCode.FIELD_NOT_ALLOWED
    assert refused(fresh(), A.VERIFY, note="").code is RefusalCode.NOTE_REQUIRED


# --- Time -------------------------------------------------------------------------------------


def test_a_step_earlier_than_the_last_one_is_refused() -> None:
    order = reach("called_back")
    last = order.history[-1].at

    error = refused(order, A.VERIFY, at=last - timedelta(seconds=1))

    assert error.code is RefusalCode.TIME_GOES_BACKWARDS
    assert do(order, A.VERIFY, at=last).state is S.VERIFIED


def test_a_step_before_the_order_opened_is_refused() -> None:
    error = refused(fresh(), A.APPEAL, at=OPENED - timedelta(minutes=1))

    assert error.code is RefusalCode.TIME_GOES_BACKWARDS


def test_times_must_be_aware_and_are_kept_in_utc() -> None:
    beijing = timezone(timedelta(hours=8))
    at = datetime(2026, 3, 2, 10, 0, tzinfo=beijing)

    naive = refused(fresh(), A.APPEAL, at=at.replace(tzinfo=None))
    kept = do(fresh(), A.APPEAL, at=at).history[-1].at

    assert naive.code is RefusalCode.NAIVE_TIME
    assert (kept, kept.tzinfo) == (datetime(2026, 3, 2, 2, 0, tzinfo=UTC), UTC)


def test_an_order_keeps_its_invariants_when_built() -> None:
    with pytest.raises(ValueError, match="time zone"):
        WorkOrder(due=DUE, opened_at=OPENED.replace(tzinfo=None))
    with pytest.raises(ValueError, match="appealed_from"):
        WorkOrder(due=DUE, opened_at=OPENED, state=S.APPEALED)
    with pytest.raises(ValueError, match="appealed_from"):
        WorkOrder(due=DUE, opened_at=OPENED, appealed_from=S.TO_CALL_BACK)


# --- Histories, call-backs, send-backs, appeals -----------------------------------------------


def test_the_history_records_who_when_and_a_note_for_every_step() -> None:
    steps: list[tuple[Action, str, ActorRole, dict[str, Any], State]] = [
        (A.CALL_BACK, "unit-li", UNIT, {"outcome": NOT_REACHED}, S.TO_CALL_BACK),
        (A.CALL_BACK, "unit-li", UNIT, {"outcome": REACHED}, S.CALLED_BACK),
        (A.VERIFY, "unit-wang", UNIT, {}, S.VERIFIED),
        (A.SET_DEADLINE, "unit-wang", UNIT, {"fix_by": FIX_BY}, S.FIXING),
        (A.MARK_FIXED, "unit-wang", UNIT, {}, S.FIXED),
        (A.GIVE_FEEDBACK, "unit-li", UNIT, {}, S.FED_BACK),
        (A.APPROVE, "district-zhao", SUPERVISOR, {}, S.CLOSED),
    ]
    order, expected, state = fresh(), [], S.TO_CALL_BACK
    for hour, (action, actor, role, fields, target) in enumerate(steps):
        at, note = OPENED + timedelta(hours=hour), f"step {hour}"
        order = do(order, action, actor=actor, role=role, at=at, note=note, **fields)
        expected.append(Transition(action, state, target, actor, role, at, note, **fields))
        state = target

    assert order.history == tuple(expected)
    assert closed_at(order) == OPENED + timedelta(hours=6)
    assert remedy(order) is A.SET_DEADLINE


@pytest.mark.parametrize("unreached", [0, 1, 2])
def test_verifying_without_reaching_the_citizen_needs_three_tries(unreached: int) -> None:
    order = fresh()
    for _ in range(unreached):
        order = do(order, A.CALL_BACK, outcome=NOT_REACHED)

    error = refused(order, A.VERIFY)

    assert error.code is RefusalCode.CALL_BACK_FIRST
    assert f"{unreached} recorded" in str(error)
    assert unreached_calls(order) == unreached
    assert A.VERIFY not in allowed_actions(order, UNIT)


def test_after_three_tries_the_order_may_be_verified_and_counts_as_called_back() -> None:
    order = reach("to_call_back_unreached_3")
    assert not called_back(order)

    verified = do(order, A.VERIFY)

    assert unreached_calls(verified) == 3
    assert called_back(verified)


def test_send_backs_loop_until_the_review_passes() -> None:
    order = do(reach("explained"), A.GIVE_FEEDBACK)
    order = do(order, A.SEND_BACK, note="复核不通过: the fix was not checked with the citizen")
    order = do(order, A.EXPLAIN)
    order = do(order, A.GIVE_FEEDBACK)
    order = do(order, A.SEND_BACK, note="an explanation is not enough: fix it")
    order = do(order, A.SET_DEADLINE)
    assert order.fix_by == FIX_BY
    order = do(order, A.MARK_FIXED)
    order = do(order, A.GIVE_FEEDBACK)
    order = do(order, A.SEND_BACK, note="photos missing")
    assert (order.state, order.fix_by) == (S.VERIFIED, None)
    order = do(order, A.FIX_NOW)
    order = do(order, A.GIVE_FEEDBACK)
    order = do(order, A.APPROVE)

    sent_back = [step for step in order.history if step.action is A.SEND_BACK]
    assert order.state is S.CLOSED
    assert [step.note for step in sent_back][1] == "an explanation is not enough: fix it"
    assert {(step.from_state, step.to_state) for step in sent_back} == {(S.FED_BACK, S.VERIFIED)}
    assert remedy(order) is A.FIX_NOW


@pytest.mark.parametrize(
    "origin", ["appealed_from_to_call_back", "appealed_from_called_back", "appealed_from_verified"]
)
def test_an_upheld_appeal_voids_the_rating_and_closes(origin: str) -> None:
    order = do(reach(origin), A.UPHOLD_APPEAL, note="申诉成立: the case was another window's")

    assert (order.state, order.voided, order.appealed_from) == (S.APPEAL_UPHELD, True, None)
    assert refused(order, A.CALL_BACK).code is RefusalCode.ORDER_CLOSED


@pytest.mark.parametrize(
    ("origin", "back_to"),
    [
        ("appealed_from_to_call_back", S.TO_CALL_BACK),
        ("appealed_from_called_back", S.CALLED_BACK),
        ("appealed_from_verified", S.VERIFIED),
    ],
)
def test_a_rejected_appeal_returns_where_it_came_from_once(origin: str, back_to: State) -> None:
    appealed = reach(origin)
    assert appealed.appealed_from is back_to

    order = do(appealed, A.REJECT_APPEAL, note="申诉驳回")

    assert (order.state, order.voided, order.appealed_from) == (back_to, False, None)
    assert refused(order, A.APPEAL).code is RefusalCode.APPEAL_LIMIT
    assert A.APPEAL not in allowed_actions(order, UNIT)


def test_a_rejected_appeal_from_to_call_back_continues_with_the_call() -> None:
    order = do(reach("appealed_from_to_call_back"), A.REJECT_APPEAL)
    order = do(order, A.CALL_BACK, outcome=REACHED)
    order = do(order, A.VERIFY)

    assert order.state is S.VERIFIED
    assert called_back(order)


# --- Properties -------------------------------------------------------------------------------

# At most one thing wrong with each command, so runs also get deep into the flow.
FLAWS: dict[str, dict[str, Any]] = {
    "none": {},
    "not_reached": {"outcome": NOT_REACHED},
    "empty_note": {"note": " "},
    "long_note": {"note": "x" * (MAX_NOTE_CHARS + 1)},
    "no_actor": {"actor": ""},
    "no_outcome": {"outcome": None},
    "stray_outcome": {"outcome": REACHED},
    "no_fix_by": {"fix_by": None},
    "past_fix_by": {"fix_by": date(2026, 3, 1)},
    "stray_fix_by": {"fix_by": FIX_BY},
}
steps_strategy = st.lists(
    st.tuples(
        st.sampled_from(Action),
        st.sampled_from(ActorRole),
        # Mostly k: take the k-th action allowed now; None: the drawn one, most likely illegal.
        st.sampled_from([None, *range(12)]),
        st.sampled_from([*FLAWS, "none", "none", "none"]),
        st.integers(min_value=-5, max_value=3 * 24 * 60),
    ),
    min_size=1,
    max_size=40,
)


def steered(
    order: WorkOrder, action: Action, role: ActorRole, k: int | None
) -> tuple[Action, ActorRole]:
    """``(action, role)``, or with ``k`` the k-th action either role may take now."""
    allowed = [(a, r) for r in ActorRole for a in allowed_actions(order, r)]
    return (action, role) if k is None or not allowed else allowed[k % len(allowed)]


@settings(max_examples=400)
@given(steps_strategy)
def test_random_actions_keep_every_invariant(
    steps: list[tuple[Action, ActorRole, int | None, str, int]],
) -> None:
    order, accepted = fresh(), 0
    refusals_when_final: list[RefusalCode] = []
    for drawn, drawn_role, k, flaw, minutes in steps:
        action, role = steered(order, drawn, drawn_role, k)
        last = order.history[-1].at if order.history else OPENED
        at = last + timedelta(minutes=minutes)
        final = order.state in TERMINAL_STATES
        try:
            order = do(order, action, role=role, at=at, **FLAWS[flaw])
        except TransitionRefusedError as error:
            if final:
                refusals_when_final.append(error.code)
            continue
        assert not final
        accepted += 1
        step = order.history[-1]
        assert step.to_state in TRANSITIONS[step.from_state][step.action]
        assert order.state is step.to_state

    assert order.state in set(State)
    assert len(order.history) == accepted
    for earlier, later in zip(order.history, order.history[1:], strict=False):
        assert earlier.to_state is later.from_state
        assert earlier.at <= later.at
    assert (order.appealed_from is not None) == (order.state is S.APPEALED)
    assert order.voided == (order.state is S.APPEAL_UPHELD)
    assert set(refusals_when_final) <= {RefusalCode.ORDER_CLOSED}
    if order.state in TERMINAL_STATES:
        assert allowed_actions(order, UNIT) == allowed_actions(order, SUPERVISOR) == []


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(Action), st.sampled_from(ActorRole)), max_size=30))
def test_well_formed_commands_succeed_exactly_when_allowed(
    steps: list[tuple[Action, ActorRole]],
) -> None:
    order = fresh()
    for action, role in steps:
        allowed = action in allowed_actions(order, role)
        try:
            order = do(order, action, role=role)
        except TransitionRefusedError:
            assert not allowed
        else:
            assert allowed


# --- Statistics -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "today", "overdue"),
    [
        ("to_call_back", DUE, False),
        ("to_call_back", DUE + timedelta(days=1), True),
        ("appealed_from_verified", DUE + timedelta(days=1), True),  # the clock keeps running
        ("fixing", FIX_BY, False),
        ("fixing", FIX_BY + timedelta(days=1), True),  # late by its own fix-by date
        ("fixed_by_deadline", FIX_BY + timedelta(days=1), False),  # fixed: fix_by no longer binds
        ("fed_back", DUE + timedelta(days=1), True),
        ("closed", DUE + timedelta(days=30), False),
        ("appeal_upheld", DUE + timedelta(days=30), False),
    ],
)
def test_overdue_by_due_date_and_by_fix_by(name: str, today: date, overdue: bool) -> None:  # noqa: FBT001
    assert is_overdue(reach(name), today) is overdue


def test_callback_rate_on_a_hand_counted_set() -> None:
    one_unreached = do(fresh(), A.CALL_BACK, outcome=NOT_REACHED)
    two_unreached = do(one_unreached, A.CALL_BACK, outcome=NOT_REACHED)
    orders = [
        reach("called_back"),  # yes
        two_unreached,  # no
        do(reach("to_call_back_unreached_3"), A.VERIFY),  # yes: verified after three tries
        reach("appealed_from_to_call_back"),  # no: nobody was called
        reach("appealed_from_called_back"),  # yes
        reach("closed"),  # yes
        reach("appeal_upheld"),  # voided: left out
    ]

    assert callback_rate(orders) == pytest.approx(4 / 6)
    assert callback_rate([]) is None
    assert callback_rate([reach("appeal_upheld")]) is None
    assert callback_rate([reach("fed_back")]) == 1.0


def test_closed_within_deadline_counts_local_days() -> None:
    fed_back = reach("fed_back")
    late_evening = datetime(2026, 3, 9, 15, 30, tzinfo=UTC)  # 23:30 on the due date in Shanghai
    after_midnight = datetime(2026, 3, 9, 16, 30, tzinfo=UTC)  # 00:30 the next day

    on_time = do(fed_back, A.APPROVE, at=late_evening)
    late = do(fed_back, A.APPROVE, at=after_midnight)

    assert closed_within_deadline(on_time)
    assert not closed_within_deadline(late)
    assert closed_within_deadline(late, zone=UTC)
    assert not closed_within_deadline(fed_back)
    assert closed_within_deadline(reach("appeal_upheld"))
    assert closed_at(fed_back) is None


def test_remedy_is_the_last_chosen() -> None:
    assert remedy(reach("verified")) is None
    assert remedy(reach("explained")) is A.EXPLAIN
    assert remedy(reach("fixed_now")) is A.FIX_NOW
    assert remedy(reach("fixing")) is A.SET_DEADLINE


# --- The document -----------------------------------------------------------------------------


def _doc_section(title: str) -> list[list[str]]:
    """The table rows (cells without backticks) of the section ``## title`` of the doc."""
    section = DOC.read_text(encoding="utf-8").split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    # Headers and rules have no backticks; every row of these tables names code in them.
    lines = [line for line in section.splitlines() if line.startswith("|") and "`" in line]
    rows = [line.strip("|").split("|") for line in lines]
    return [[cell.strip().replace("`", "") for cell in row] for row in rows]


def test_the_documented_transitions_are_the_code() -> None:
    documented = {
        (State(row[0]), Action(row[1].split()[0]), ActorRole(row[2]))
        for row in _doc_section("Transitions")
    }

    assert documented == {
        (state, action, ACTION_ROLES[action])
        for state, takes in TRANSITIONS.items()
        for action in takes
    }


def test_the_documented_states_roles_and_codes_are_the_code() -> None:
    codes = {row[-1] for row in _doc_section("Every action records who, when and why")}
    states = {row[0] for row in _doc_section("States")}
    roles = {row[0]: re.findall(r"[a-z_]+", row[2]) for row in _doc_section("Who may do what")}

    assert codes == set(RefusalCode)
    assert states == set(State)
    assert {(a, r) for r, actions in roles.items() for a in actions} == set(ACTION_ROLES.items())
