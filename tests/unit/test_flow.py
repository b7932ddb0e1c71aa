"""The bridge's flow control without Kafka: commit points, room, backlogs, busy keys, lag."""

from __future__ import annotations

from ferry.consumers.flow import Flow


def test_only_a_contiguous_run_of_finished_records_is_committed() -> None:
    flow: Flow[str] = Flow(max_in_flight=8)
    for offset in (10, 11, 12, 13):
        flow.progress("p0").add(offset)
    flow.progress("p0").finish(11)
    flow.progress("p0").finish(13)

    assert flow.commit_points() == {}  # 10 is not finished: nothing past it is committed

    flow.progress("p0").finish(10)
    assert flow.commit_points() == {"p0": 12}  # 10 and 11; 12 still runs
    flow.progress("p0").finish(12)
    assert flow.commit_points() == {"p0": 14}
    assert flow.commit_points() == {}  # nothing new since


def test_commit_points_of_chosen_partitions_only() -> None:
    flow: Flow[str] = Flow(max_in_flight=8)
    for partition in ("p0", "p1"):
        flow.progress(partition).add(0)
        flow.progress(partition).finish(0)

    assert flow.commit_points(["p1"]) == {"p1": 1}
    assert flow.commit_points() == {"p0": 1}


def test_room_counts_records_at_temporal_apart_from_those_behind_their_key() -> None:
    flow: Flow[str] = Flow(max_in_flight=4)
    progress = flow.progress("p0")
    for offset in range(4):
        progress.add(offset)
    assert flow.room() == 0
    assert flow.at_temporal == 4

    progress.waiting = 3  # three of them wait behind an earlier record of their key
    assert flow.room() == 3
    assert flow.at_temporal == 1
    assert progress.keys_busy and flow.keys_busy("p0")
    assert not flow.keys_busy("p1")


def test_finished_but_uncommitted_records_are_bounded_too() -> None:
    flow: Flow[str] = Flow(max_in_flight=2)
    progress = flow.progress("p0")
    progress.add(0)  # a slow record holds the commit back
    for offset in range(1, 8):
        progress.add(offset)
        progress.finish(offset)

    assert flow.room() == 0  # 4 x max_in_flight offsets wait for a commit


def test_polling_waits_for_a_sixteenth_of_the_room_and_idle_means_nothing_runs() -> None:
    flow: Flow[str] = Flow(max_in_flight=256)
    assert flow.least_poll == 16
    assert Flow[str](max_in_flight=8).least_poll == 1
    assert flow.idle()
    flow.progress("p0").add(5)
    assert not flow.idle()
    flow.progress("p0").finish(5)
    assert flow.idle()


def test_backlog_and_lag_from_the_highwater_mark() -> None:
    flow: Flow[str] = Flow(max_in_flight=8)
    assert flow.backlog("p0", None) == 0  # not fetched yet: nothing at hand
    assert flow.backlog("p0", 100) == 1  # position unknown: ask it
    flow.assigned("p0", 40)
    assert flow.backlog("p0", 100) == 60
    flow.progress("p0").add(40)
    assert flow.backlog("p0", 100) == 59

    assert flow.lag("p0", 100) is None  # nothing committed yet
    flow.progress("p0").finish(40)
    flow.commit_points()
    assert flow.lag("p0", 100) == 59

    flow.revoked("p0")
    assert flow.backlog("p0", 100) == 1 and flow.lag("p0", 100) is None
