"""bench/fsq.py's verdicts on the issue's goals, from given figures."""

from __future__ import annotations

from bench.fsq import goals


def _summary(rows: dict[int, tuple[float, float, float, float]]) -> dict:  # type: ignore[type-arg]
    """size → (FSQ usage, FSQ MSE, VQ usage, VQ MSE)."""
    return {
        size: {"fsq": {"usage": fu, "mse": fm}, "vq": {"usage": vu, "mse": vm}}
        for size, (fu, fm, vu, vm) in rows.items()
    }


def test_all_goals_met() -> None:
    verdicts = goals(
        _summary(
            {
                2**8: (90.0, 0.010, 80.0, 0.009),  # 2^8 is exempt from both FSQ goals
                2**10: (99.0, 0.008, 50.0, 0.008),
                2**12: (97.0, 0.006, 20.0, 0.007),
                2**16: (95.0, 0.004, 2.0, 0.009),
            }
        )
    )
    assert [met for _, met, _ in verdicts] == [True, True, True]


def test_each_goal_can_fail() -> None:
    verdicts = goals(
        _summary(
            {
                2**10: (94.9, 0.008, 50.0, 0.008),
                2**12: (97.0, 0.006, 60.0, 0.007),  # VQ usage rises
                2**14: (97.0, 0.008, 10.0, 0.007),  # FSQ MSE above VQ's
            }
        )
    )
    assert [met for _, met, _ in verdicts] == [False, False, False]
    assert "94.9%" in verdicts[0][2]


def test_goals_without_the_sizes_they_need_are_not_judged() -> None:
    verdicts = goals(_summary({2**8: (90.0, 0.01, 80.0, 0.01)}))
    assert [met for _, met, _ in verdicts] == [None, None, None]
