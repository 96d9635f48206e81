"""The rules of following champion while serving (serving/follow.py): load, swap, refuse, and one
line per change of state, never one per poll."""

import pytest

from housing_mlops.serving import follow
from housing_mlops.serving.follow import Action, Watch

URI = "http://127.0.0.1:5000"
COLUMNS = [
    {"type": "double", "name": "longitude", "required": True},
    {"type": "double", "name": "total_bedrooms", "required": False},
    {"type": "string", "name": "ocean_proximity", "required": True},
]


@pytest.mark.parametrize(
    ("champion", "refused", "action"),
    [
        ("1", frozenset(), Action.KEEP),  # the served version
        ("2", frozenset(), Action.LOAD),  # a new one
        ("2", frozenset({"2"}), Action.KEEP),  # refused once: never loaded again
        ("3", frozenset({"2"}), Action.LOAD),
        (None, frozenset(), Action.KEEP),  # alias not set: keep serving
    ],
)
def test_only_a_new_unrefused_champion_is_loaded(champion: str | None, refused: frozenset[str], action: Action) -> None:
    assert follow.next_action("1", champion, refused) is action


def test_equal_inputs_may_swap_and_every_difference_is_named_in_one_line() -> None:
    assert follow.inputs_difference(COLUMNS, [dict(c) for c in COLUMNS]) is None
    assert follow.inputs_difference(None, None) is None
    assert follow.inputs_difference(COLUMNS, None) == "only the served version has an input signature"
    assert follow.inputs_difference(None, COLUMNS) == "only the new version has an input signature"
    other = [COLUMNS[0], {"type": "long", "name": "total_bedrooms", "required": True}, {"type": "double", "name": "x"}]
    assert follow.inputs_difference(COLUMNS, other) == (
        "missing ocean_proximity; added x; changed total_bedrooms double (optional) -> long"
    )
    assert follow.inputs_difference(COLUMNS, COLUMNS[::-1]) == "the same columns in another order"
    many = [{"type": "double", "name": f"c{i}"} for i in range(9)]
    assert follow.inputs_difference(COLUMNS, COLUMNS + many).endswith("added c0, c1, c2, c3, c4 and 4 more")
    tensors = [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 2]}}]
    assert follow.inputs_difference(tensors, tensors) is None


def test_a_swap_at_the_first_poll_that_sees_the_move_says_so() -> None:
    watch = Watch(served="1", seen="1")
    watch = follow.begin(watch)
    watch, action, lines = follow.answered(watch, URI, "1")
    assert (action, lines, watch.seen_at) == (Action.KEEP, [], 1)
    before = watch
    watch, action, lines = follow.answered(follow.begin(watch), URI, "2")
    assert (action, lines) == (Action.LOAD, [])
    watch, line = follow.swapped(watch, "2", before.seen, before.seen_at, 0.25)
    assert (
        line
        == "serving v2 instead of v1: champion was v1 at poll 1 and v2 at poll 2; swapped 0.25 s after that poll began"
    )
    assert (watch.served, watch.seen, watch.seen_at) == ("2", "2", 2)
    _, action, _ = follow.answered(follow.begin(watch), URI, "2")
    assert action is Action.KEEP


def test_a_refused_version_is_logged_once_and_not_loaded_again() -> None:
    watch = Watch(served="1", seen="1")
    watch, action, _ = follow.answered(follow.begin(watch), URI, "3")
    assert action is Action.LOAD
    watch, line = follow.refused(watch, "3", "missing ocean_proximity")
    assert line == "champion v3 not served, still serving v1: missing ocean_proximity"
    for _ in range(3):
        watch, action, lines = follow.answered(follow.begin(watch), URI, "3")
        assert (action, lines, watch.served) == (Action.KEEP, [], "1")
    # moved on to a good version: that one is loaded
    assert follow.answered(follow.begin(watch), URI, "4")[1] is Action.LOAD


def test_a_failed_load_is_retried_every_poll_but_logged_once() -> None:
    watch = Watch(served="1", seen="2")
    watch, first = follow.load_failed(watch, "2", "connection reset")
    assert first == "champion v2 could not be loaded, still serving v1 (retried every poll): connection reset"
    watch, again = follow.load_failed(watch, "2", "connection reset")
    assert again is None
    assert follow.answered(follow.begin(watch), URI, "2")[1] is Action.LOAD  # retried
    watch, _ = follow.swapped(watch, "2", "1", 0, 1.0)
    assert watch.failed == frozenset()


def test_an_unreachable_registry_warns_once_when_lost_and_once_when_back() -> None:
    watch = Watch(served="1", seen="1")
    watch, line = follow.unreachable(follow.begin(watch), URI, "Connection refused")
    assert line == f"tracking server {URI} unreachable (Connection refused); serving v1 until it is back"
    for _ in range(3):
        watch, line = follow.unreachable(follow.begin(watch), URI, "Connection refused")
        assert line is None
    watch, action, lines = follow.answered(follow.begin(watch), URI, "1")
    assert (action, lines, watch.reachable, watch.seen_at) == (
        Action.KEEP,
        [f"tracking server {URI} is back; champion is v1"],
        True,
        5,
    )
    assert follow.answered(follow.begin(watch), URI, "1")[2] == []


def test_an_unset_champion_keeps_the_served_version_with_one_line() -> None:
    watch = Watch(served="1", seen="1")
    watch, action, lines = follow.answered(follow.begin(watch), URI, None)
    assert (action, lines) == (Action.KEEP, ["champion is not set in the registry; serving v1 until it is"])
    watch, action, lines = follow.answered(follow.begin(watch), URI, None)
    assert (action, lines) == (Action.KEEP, [])


def test_an_error_is_cut_to_what_failed() -> None:
    mlflow_refused = (
        "API request to http://127.0.0.1:5000/api/2.0/mlflow/registered-models/alias failed with exception "
        "HTTPConnectionPool(host='127.0.0.1', port=5000): Max retries exceeded with url: /api/2.0/... (Caused by "
        "NewConnectionError(\"HTTPConnection(host='127.0.0.1', port=5000): Failed to establish a new connection: "
        '[Errno 111] Connection refused"))'
    )
    assert follow.short_error(mlflow_refused) == "[Errno 111] Connection refused"
    assert (
        follow.short_error("RESOURCE_DOES_NOT_EXIST: no such model\ntraceback")
        == "RESOURCE_DOES_NOT_EXIST: no such model"
    )
    assert follow.short_error("x" * 500) == "x" * 200
    assert follow.short_error("  ") == "no message"


def test_a_swap_right_after_start_says_start() -> None:
    watch, _, _ = follow.answered(follow.begin(Watch(served="1", seen="1")), URI, "2")
    assert "champion was v1 at poll 0 (start) and v2 at poll 1;" in follow.swapped(watch, "2", "1", 0, 0.1)[1]
