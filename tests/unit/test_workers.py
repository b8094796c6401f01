"""tests.helpers.Workers: an exception in a worker thread fails the test that started it."""

from __future__ import annotations

import threading

import pytest

from tests.helpers import Workers


def test_an_exception_in_a_worker_is_raised_in_the_test_thread():
    def work(n: int) -> None:
        assert n != 2, "worker 2 failed"

    with pytest.raises(AssertionError, match="worker 2 failed"):
        with Workers() as workers:
            for n in range(4):
                workers.start(work, n)


def test_workers_that_finish_cleanly_pass():
    done = []
    with Workers() as workers:
        for n in range(4):
            workers.start(done.append, n)
    assert sorted(done) == [0, 1, 2, 3]


def test_a_worker_that_never_ends_fails_the_join():
    release = threading.Event()
    workers = Workers()
    workers.start(release.wait, name="stuck")
    with pytest.raises(AssertionError, match=r"still running after 0.1s: \['stuck'\]"):
        workers.join(0.1)
    release.set()
    workers.join(5)
