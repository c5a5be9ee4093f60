"""A small simulation shared by the fraud tests (300 customers, 600 terminals, 60 days)."""

from __future__ import annotations

import pandas as pd  # type: ignore[import-untyped]
import pytest

from fraud.simulator import SimulationConfig, SimulationTruth, simulate_with_truth

SMALL = SimulationConfig(n_customers=300, n_terminals=600, n_days=60, seed=7)


@pytest.fixture(scope="session")
def small_sim() -> tuple[pd.DataFrame, SimulationTruth]:
    return simulate_with_truth(SMALL)


@pytest.fixture(scope="session")
def small_frame(small_sim: tuple[pd.DataFrame, SimulationTruth]) -> pd.DataFrame:
    return small_sim[0]
