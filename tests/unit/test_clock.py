"""The disciplined proposal clock: follows elapsed time, slews toward the wall clock."""

from __future__ import annotations

import pytest

from raftcache.clock import DisciplinedClock, ManualClock, SystemClock, proposal_clock


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup():
    wall = ManualClock(1_700_000_000_000)
    mono = FakeMonotonic()
    return wall, mono, DisciplinedClock(wall, max_slew=0.1, monotonic=mono)


def step(wall, mono, seconds: float) -> None:
    wall.advance(int(seconds * 1000))
    mono.now += seconds


def test_follows_the_wall_clock_when_it_behaves(setup):
    wall, mono, clock = setup
    assert clock.now_ms() == wall.now_ms()
    for _ in range(100):
        step(wall, mono, 0.1)
        assert abs(clock.now_ms() - wall.now_ms()) <= 1


def test_a_forward_jump_is_absorbed_slowly(setup):
    wall, mono, clock = setup
    start = clock.now_ms()
    wall.advance(3_600_000)  # the wall clock jumps an hour ahead
    for _ in range(50):  # 5 s of real time
        step(wall, mono, 0.1)
        clock.now_ms()
    advanced = clock.now_ms() - start
    assert 5_000 <= advanced <= 5_500 + 1  # at most 10% faster than real time


def test_a_backward_jump_does_not_freeze_time(setup):
    wall, mono, clock = setup
    start = clock.now_ms()
    wall.advance(-3_600_000)
    values = []
    for _ in range(50):
        step(wall, mono, 0.1)
        values.append(clock.now_ms())
    assert values == sorted(values)  # never goes back
    assert 4_500 - 1 <= values[-1] - start <= 5_000  # at most 10% slower than real time


def test_small_corrections_are_followed(setup):
    wall, mono, clock = setup
    clock.now_ms()
    wall.advance(200)  # NTP steps 200 ms
    for _ in range(30):
        step(wall, mono, 0.1)
        clock.now_ms()
    assert abs(clock.now_ms() - wall.now_ms()) <= 1  # caught up after 2 s of slewing


def test_a_manual_clock_is_its_own_elapsed_time_so_tests_can_move_time_on():
    wall = ManualClock(1_700_000_000_000)
    clock = proposal_clock(wall)
    seen = []
    for step_ms in (1, 7, 199, 3_600_000, 3):  # an hour at once is elapsed time, not a jump to slew
        wall.advance(step_ms)
        seen.append(clock.now_ms() - wall.now_ms())
    assert seen == [0] * 5


def test_a_system_clock_is_disciplined_against_the_real_monotonic_clock():
    wall = SystemClock()
    clock = proposal_clock(wall)
    clock.now_ms()
    wall.offset_ms = 3_600_000  # a jump forward: absorbed by slewing, not taken at once
    assert clock.now_ms() - (wall.now_ms() - wall.offset_ms) < 60_000
