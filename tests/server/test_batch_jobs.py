"""Background jobs yield to receiving: while uploads arrive only ``busy_workers`` jobs run, the rest wait
and start once nothing was received for ``quiet_seconds`` (a fake clock: no sleeping on time)."""

from __future__ import annotations

import os
import threading

from camroll.server.jobs.yielding import JOB_NICE, ReceiveActivity, lower_this_thread


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _start_job(activity: ReceiveActivity, started: list[int], release: threading.Event, n: int) -> threading.Thread:
    def job() -> None:
        with activity.turn():
            started.append(n)
            release.wait(10)

    t = threading.Thread(target=job, daemon=True)
    t.start()
    return t


def test_one_job_at_a_time_while_uploads_arrive_then_all_catch_up() -> None:
    clock = FakeClock()
    activity = ReceiveActivity(clock, quiet_seconds=2.0, busy_workers=1)
    activity.receiving()
    assert activity.busy()
    started: list[int] = []
    release = threading.Event()
    first = _start_job(activity, started, release, 1)
    while not started:
        threading.Event().wait(0.01)
    second = _start_job(activity, started, release, 2)
    second.join(0.6)  # it looked at the clock at least twice and still waits
    assert started == [1] and activity.running == 1 and not activity.may_start()
    clock.now += 2.5  # nothing received for longer than the quiet time
    assert not activity.busy() and activity.may_start()
    second_started = threading.Event()
    deadline = threading.Event()
    for _ in range(100):
        if len(started) == 2:
            second_started.set()
            break
        deadline.wait(0.05)
    assert second_started.is_set(), started
    release.set()
    first.join(5)
    second.join(5)
    assert activity.running == 0


def test_while_uploads_arrive_jobs_take_only_their_share_of_the_time() -> None:
    clock = FakeClock()
    activity = ReceiveActivity(clock, quiet_seconds=2.0, busy_workers=1, busy_share=0.25)
    activity.receiving()
    with activity.turn():
        clock.now += 0.4  # a 0.4 s thumbnail
    activity.receiving()
    assert not activity.may_start()  # resting: 0.4 s of work buys 1.2 s of rest at a quarter share
    clock.now += 1.1
    activity.receiving()
    assert not activity.may_start()
    clock.now += 0.2
    activity.receiving()
    assert activity.may_start()
    with activity.turn():
        clock.now += 0.4
    clock.now += 2.5  # nothing received since: no rests, every worker runs
    assert activity.may_start()


def test_an_idle_server_runs_every_worker() -> None:
    activity = ReceiveActivity(FakeClock(), busy_workers=1)
    assert not activity.busy()
    started: list[int] = []
    release = threading.Event()
    threads = [_start_job(activity, started, release, n) for n in range(3)]
    for _ in range(100):
        if len(started) == 3:
            break
        threading.Event().wait(0.02)
    assert sorted(started) == [0, 1, 2]
    release.set()
    for t in threads:
        t.join(5)


def test_job_threads_run_at_a_lower_priority() -> None:
    seen: list[int] = []
    # Another test of this process may have run a job inline on this thread (and so lowered it).
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def job() -> None:
        lower_this_thread()
        lower_this_thread()  # once per thread: a second call changes nothing
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    t = threading.Thread(target=job)
    t.start()
    t.join(5)
    assert seen and seen[0] >= JOB_NICE
    # The request threads (here: the test's own) keep theirs.
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
