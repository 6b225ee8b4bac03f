"""How `cropai up` restarts a program that dies, and what it starts the programs with."""

from cropai.cli.supervisor import Ports, RestartPolicy, stack_environment
from cropai.config import Settings

MINUTE = 60.0


def crash_at(policy: RestartPolicy, minutes: list[float]) -> list[bool]:
    """Whether each crash of one program, at these minutes of the stack's life, is restarted."""
    restarts: tuple[float, ...] = ()
    allowed = []
    for now in (minute * MINUTE for minute in minutes):
        allowed.append(policy.allows(restarts, now))
        restarts = (*policy.recent(restarts, now), now)
    return allowed


def test_crashes_spread_over_a_long_run_never_use_up_the_restart_budget() -> None:
    # The sixth crash of a Dask worker, 22 minutes in, used to stop the whole stack.
    assert crash_at(RestartPolicy(), [2, 6, 10, 14, 18, 22, 26, 30]) == [True] * 8


def test_a_sixth_crash_within_ten_minutes_uses_up_the_budget() -> None:
    assert crash_at(RestartPolicy(), [1, 2, 3, 4, 5, 6]) == [True] * 5 + [False]


def test_quick_crashes_back_off_doubling_and_a_crash_after_a_long_run_restarts_at_once() -> None:
    policy = RestartPolicy()
    now = 30 * MINUTE
    quick = [policy.delay_s([now - 1] * count, now, ran_s=5) for count in range(7)]
    assert quick == [1, 2, 4, 8, 16, 30, 30]
    assert policy.delay_s([now - 1] * 4, now, ran_s=2 * MINUTE) == 0


def test_the_stack_sizes_its_concurrency_to_the_machine() -> None:
    env = stack_environment(Settings(_env_file=None), Ports(), cores=8)
    assert (env["CROPAI_FLOW_CONCURRENCY"], env["CROPAI_ANALYSIS_CONCURRENCY"]) == ("8", "4")
    small = stack_environment(Settings(_env_file=None), Ports(), cores=1)
    assert (small["CROPAI_FLOW_CONCURRENCY"], small["CROPAI_ANALYSIS_CONCURRENCY"]) == ("2", "1")


def test_concurrency_the_operator_set_is_kept() -> None:
    settings = Settings(_env_file=None, flow_concurrency=3, analysis_concurrency=3)
    env = stack_environment(settings, Ports(), cores=16)
    assert (env["CROPAI_FLOW_CONCURRENCY"], env["CROPAI_ANALYSIS_CONCURRENCY"]) == ("3", "3")
