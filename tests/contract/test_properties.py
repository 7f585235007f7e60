"""Property: any sequence of appends and reads behaves like a list per stream."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from es_core import ConcurrencyError, EventStore, Expect, NewEvent

Sid = Callable[..., str]

append_op = st.tuples(
    st.just("append"),
    st.integers(0, 2),  # which stream
    st.integers(0, 3),  # how many events
    st.sampled_from(["exact", "stale", "any", "no_stream"]),
)
read_op = st.tuples(
    st.just("read"),
    st.integers(0, 2),
    st.integers(0, 8),  # after
    st.one_of(st.none(), st.integers(0, 8)),  # upto
    st.one_of(st.none(), st.integers(0, 5)),  # limit
    st.booleans(),  # reverse
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.one_of(append_op, read_op), max_size=25))
def test_the_store_behaves_like_a_list_per_stream(store: EventStore, sid: Sid, ops: list[tuple]) -> None:  # type: ignore[type-arg]
    run = uuid.uuid4().hex[:8]  # a fresh set of streams per example: the store outlives examples
    streams = [sid(f"p{i}") + f"-{run}" for i in range(3)]
    model: dict[str, list[int]] = {s: [] for s in streams}
    counter = 0
    for op in ops:
        stream = streams[op[1]]
        if op[0] == "append":
            _, _, count, mode = op
            events = []
            for _ in range(count):
                counter += 1
                events.append(NewEvent(event_type="P", data={"n": counter}))
            current = len(model[stream])
            expected = {"exact": current, "stale": current + 1, "any": Expect.ANY, "no_stream": Expect.NO_STREAM}[mode]
            should_fail = mode == "stale" or (mode == "no_stream" and current > 0)
            try:
                result = store.append(stream, events, expected)
            except ConcurrencyError:
                assert should_fail
                continue
            assert not should_fail
            model[stream].extend(e.data["n"] for e in events)
            assert result.last_version == len(model[stream])
        else:
            _, _, after, upto, limit, reverse = op
            expected_list = [
                n for v, n in enumerate(model[stream], start=1) if v > after and (upto is None or v <= upto)
            ]
            if reverse:
                expected_list.reverse()
            if limit is not None:
                expected_list = expected_list[:limit]
            got = store.read_stream(stream, after=after, upto=upto, limit=limit, reverse=reverse)
            assert [e.data["n"] for e in got] == expected_list
    for stream in streams:
        assert store.stream_version(stream) == len(model[stream])
