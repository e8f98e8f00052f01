"""Instance lanes (`toymodels.device.run_in_lanes`): contiguous parts, one torch thread each."""
import threading

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from toymodels.device import lane_split, run_in_lanes


@given(n=st.integers(1, 200), lanes=st.integers(1, 40))
def test_lane_split_covers_the_range_in_order_with_balanced_parts(n, lanes):
    parts = lane_split(n, lanes)
    assert len(parts) == min(n, lanes)
    assert parts[0][0] == 0 and parts[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    sizes = [e - s for s, e in parts]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_lanes_run_side_by_side_on_one_torch_thread_each_and_leave_the_caller_alone():
    old = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        seen = {}
        barrier = threading.Barrier(3, timeout=30)  # all three parts must be running at once

        def part(j, s, e):
            barrier.wait()
            seen[j] = (s, e, torch.get_num_threads(), threading.get_ident())

        run_in_lanes(part, 7)
        assert sorted(seen) == [0, 1, 2]
        assert [seen[j][:2] for j in range(3)] == [(0, 3), (3, 5), (5, 7)]
        assert all(v[2] == 1 for v in seen.values())
        assert len({v[3] for v in seen.values()}) == 3 and threading.get_ident() not in {v[3] for v in seen.values()}
        assert torch.get_num_threads() == 3  # the caller keeps its threads
    finally:
        torch.set_num_threads(old)


def test_one_lane_runs_in_the_caller():
    seen = []
    run_in_lanes(lambda j, s, e: seen.append((j, s, e, threading.get_ident())), 5, lanes=1)
    assert seen == [(0, 0, 5, threading.get_ident())]


def test_a_failing_part_raises_after_every_part_finished():
    done = []

    def part(j, s, e):
        if j == 0:
            raise ValueError("part 0 failed")
        done.append(j)

    with pytest.raises(ValueError, match="part 0 failed"):
        run_in_lanes(part, 4, lanes=4)
    assert sorted(done) == [1, 2, 3]


def _lanes_in_child(q):
    out = []
    run_in_lanes(lambda j, s, e: out.append((s, e)), 4, lanes=2)
    q.put(sorted(out))


def test_a_forked_child_starts_its_own_lanes():
    """A forked child has the parent's record of the lane threads, not the threads: it must
    start its own (submitting to the parent's would wait forever)."""
    import multiprocessing as mp

    run_in_lanes(lambda j, s, e: None, 2, lanes=2)  # the parent's lanes exist
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_lanes_in_child, args=(q,))
    p.start()
    try:
        assert q.get(timeout=60) == [(0, 2), (2, 4)]
    finally:
        p.join(timeout=60)
        if p.is_alive():
            p.kill()
    assert p.exitcode == 0


@pytest.mark.parametrize("grad", [False, True])
def test_each_lane_runs_in_the_callers_autograd_mode(grad):
    """torch's grad mode is per thread: a lane must take the caller's, not its own default."""
    seen = {}
    with torch.set_grad_enabled(grad):
        run_in_lanes(lambda j, s, e: seen.__setitem__(j, torch.is_grad_enabled()), 3, lanes=3)
    assert seen == {0: grad, 1: grad, 2: grad}


def test_a_pool_replaced_by_a_larger_one_still_takes_work():
    """Growing a shared pool must not break a caller that got the smaller one a moment before
    (lanes asked for by another thread): the old pool is left running, not shut down."""
    from toymodels.device import SharedPool

    shared = SharedPool("test-pool")
    small = shared.get(1)
    big = shared.get(3)
    assert big is not small and shared.get(2) is big
    assert small.submit(torch.get_num_threads).result() == 1
    assert big.submit(torch.get_num_threads).result() == 1
