"""softgrad.bench.timer.time_beside: a call timed in rounds between runs of a bandwidth kernel, each round's
fraction taken of the better run on either side of it. Driven by a scripted clock: a machine whose memory halves
its speed partway through, as the shared VMs' does between levels (no real timing)."""

from __future__ import annotations

import pytest

from softgrad.bench import timer


class Machine:
    """A clock, and a memory at full speed until ``fast_until`` seconds, at half speed after."""

    def __init__(self, fast_until: float):
        self.now, self.fast_until = 0.0, fast_until

    def clock(self) -> float:
        return self.now

    def spend(self, seconds_at_full_speed: float) -> float:
        took = seconds_at_full_speed * (1.0 if self.now < self.fast_until else 2.0)
        self.now += took
        return took


class Limit:
    """A copy that moves 1 GB in ``seconds`` at full speed (:class:`softgrad.bench.bandwidth.Kernel`'s surface)."""

    counted = 10**9

    def __init__(self, machine: Machine, seconds: float):
        self.machine, self.seconds = machine, seconds

    def run(self) -> None:
        self.machine.spend(self.seconds)

    def time(self) -> float:
        return self.machine.spend(self.seconds)

    def gbps(self, seconds: float) -> float:
        return self.counted / seconds / 1e9


@pytest.fixture
def machine(monkeypatch):
    m = Machine(fast_until=0.3)
    monkeypatch.setattr(timer.time, "perf_counter", m.clock)
    return m


def test_each_round_is_held_to_the_limit_beside_it(machine):
    """A call at half the copy's rate on either level reads 50% in every round but the one the level changes in;
    a limit taken from the whole run (the fast level's 100 GB/s) would put every slow round at 25%."""
    limit = Limit(machine, 0.01)  # 100 GB/s, then 50
    paired = timer.time_beside(lambda: machine.spend(0.02), limit, 10**9, min_time=0.5)  # 50 GB/s, then 25
    fractions = paired.fractions
    assert len(fractions) == len(paired.limit_gbps) == paired.timing.repeats >= 15, "one call a round here"
    assert sorted(set(paired.limit_gbps)) == pytest.approx([50.0, 100.0]), "both levels were seen"
    assert sum(f != pytest.approx(0.5) for f in fractions) <= 1, fractions
    assert paired.fraction == pytest.approx(0.5)
    assert paired.timing.first_call_s == pytest.approx(0.02)
    assert paired.timing.median_s in (pytest.approx(0.02), pytest.approx(0.04))


def test_short_calls_fill_a_round_as_long_as_one_run_of_the_limit(machine):
    limit = Limit(machine, 0.01)
    paired = timer.time_beside(lambda: machine.spend(0.001), limit, 10**8, min_time=0.0)
    assert len(paired.fractions) == 5, "min_rounds, where min_time asks for less"
    assert paired.timing.repeats >= 5 * 10, "each round: calls adding up to one run of the limit at least"
    assert paired.fraction == pytest.approx(1.0), "100 GB/s against a 100 GB/s copy"
