from ferry.workflows.dedupe import SeenEvents


def test_a_repeated_event_is_recognised() -> None:
    seen = SeenEvents()
    assert seen.first_time("e-1")
    assert not seen.first_time("e-1")
    assert seen.first_time("e-2")


def test_memory_is_bounded_and_forgets_the_oldest_first() -> None:
    seen = SeenEvents(limit=3)
    for event_id in ("a", "b", "c", "d"):
        assert seen.first_time(event_id)
    assert seen.ids == ["b", "c", "d"]
    assert seen.first_time("a")  # forgotten, so new again
    assert not seen.first_time("d")


def test_state_survives_a_round_trip_as_continue_as_new_input() -> None:
    seen = SeenEvents(limit=10)
    seen.first_time("x")
    carried = SeenEvents(**{"ids": list(seen.ids), "limit": seen.limit})
    assert not carried.first_time("x")
