"""Calibration maps: monotone, the identity when unfitted, fitted by scikit-learn; bad pairs named."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argtree.calibration import IDENTITY, CalibrationError, CalibrationMap, fit

pytest.importorskip("sklearn")


def _noisy(n, signal, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.45
    c = np.clip(0.5 + signal * (truth - 0.5) + rng.normal(0, 0.2, n), 0.01, 0.99)
    return c, truth


def test_identity_when_unfitted():
    assert not IDENTITY.fitted
    assert IDENTITY(0.3) == 0.3 and IDENTITY(0.999) == 0.99  # clamped: never a certainty
    assert CalibrationMap.from_dict(None) == IDENTITY and CalibrationMap.from_dict({}) == IDENTITY


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), signal=st.floats(-0.5, 0.8), method=st.sampled_from(["platt", "isotonic", "auto"]))
def test_fitted_maps_are_monotone_and_round_trip(seed, signal, method):
    c, t = _noisy(120, signal, seed)
    m = fit(c, t, method)
    xs = np.linspace(0, 1, 201)
    ys = m(xs)
    assert np.all(np.diff(ys) >= -1e-12) and ys.min() >= 0.01 and ys.max() <= 0.99
    assert CalibrationMap.from_dict(m.to_dict()) == m


def test_noise_is_shrunk_to_the_base_rate_and_signal_kept():
    c, t = _noisy(400, 0.0, 1)                # credences carry nothing
    m = fit(c, t, "platt")
    assert abs(m(0.9) - t.mean()) < 0.06 and abs(m(0.1) - t.mean()) < 0.06
    c, t = _noisy(400, 0.6, 2)                # credences carry a lot
    m = fit(c, t, "platt")
    assert m(0.9) - m(0.1) > 0.5
    brier_raw = np.mean((c - t) ** 2)
    assert np.mean((m(c) - t) ** 2) <= brier_raw + 1e-9


def test_anticorrelated_credences_give_a_flat_map_not_a_decreasing_one():
    c, t = _noisy(300, -0.6, 3)
    m = fit(c, t, "platt")
    assert m.a == 0.0 and m(0.1) == pytest.approx(m(0.9))


@pytest.mark.parametrize("c, t, msg", [
    ([0.5] * 3, [True, False, True], "need at least"),
    ([0.5] * 12, [True] * 12, "both true and false"),
    ([0.5] * 11 + [1.5], [True, False] * 6, "probabilities"),
    ([0.5] * 12, [True] * 11, "as many answers"),
])
def test_bad_pairs_are_named(c, t, msg):
    with pytest.raises(CalibrationError, match=msg):
        fit(c, t)


def test_bad_map_rejected():
    with pytest.raises(CalibrationError):
        CalibrationMap("platt", a=-1.0)
    with pytest.raises(CalibrationError):
        CalibrationMap("isotonic", x=(0.1, 0.5), y=(0.6, 0.2))
    with pytest.raises(CalibrationError):
        CalibrationMap("magic")
