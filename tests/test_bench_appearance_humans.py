"""The pure parts of ``bench/appearance_humans.py``: body-band histograms, AUC, the held-out choice."""

from __future__ import annotations

import numpy as np
import pytest

from bench.appearance_humans import LAYOUTS, auc, band_hist, best, hellinger, pooled
from ptrack.persons.appearance import PART_DIM, _bins, crop_hist

RED, GREEN, BLUE = (0, 0, 220), (0, 200, 0), (230, 0, 0)  # BGR


def body(height: int = 100, width: int = 40) -> np.ndarray:
    """Head red (0-20% of the height), torso green (20-55%), legs blue (55-100%)."""
    img = np.zeros((height, width, 3), np.uint8)
    img[: height * 20 // 100] = RED
    img[height * 20 // 100: height * 55 // 100] = GREEN
    img[height * 55 // 100:] = BLUE
    return img


def bin_of(bgr: tuple[int, int, int]) -> int:
    return int(_bins(np.array([[bgr]], np.uint8))[0, 0])


def test_three_box_bands_each_hold_their_own_colour() -> None:
    h = band_hist(body(), **LAYOUTS["hsv3b"])
    assert h.shape == (3 * PART_DIM,)
    head, torso, legs = np.split(h, 3)
    assert head[bin_of(RED)] == pytest.approx(1.0)
    assert torso[bin_of(GREEN)] == pytest.approx(1.0)
    assert legs[bin_of(BLUE)] == pytest.approx(1.0)


def test_central_region_bands_start_below_the_top_margin() -> None:
    # hsv3 cuts the central region (10-90% of the height): its first band, 10-26%, is mostly head
    head, torso, legs = np.split(band_hist(body(), **LAYOUTS["hsv3"]), 3)
    assert head[bin_of(RED)] == pytest.approx(10 / 16, abs=0.07)
    assert head[bin_of(GREEN)] == pytest.approx(6 / 16, abs=0.07)
    assert torso[bin_of(GREEN)] == pytest.approx(1.0)  # 26-54%
    assert legs[bin_of(BLUE)] == pytest.approx(35 / 36)  # 54-90%: one green row


def test_two_band_layout_matches_the_shipped_histogram() -> None:
    img = np.random.default_rng(0).integers(0, 256, (90, 30, 3), dtype=np.uint8)
    assert np.allclose(band_hist(img, **LAYOUTS["hsv"]), crop_hist(img), atol=0.03)


def test_tiny_crop_has_no_histogram() -> None:
    assert band_hist(np.zeros((3, 2, 3), np.uint8), **LAYOUTS["hsv3"]) is None


def test_hellinger_is_zero_for_equal_and_one_for_disjoint_parts() -> None:
    a = np.r_[1.0, 0, 1, 0]
    b = np.r_[0.0, 1, 0, 1]
    assert hellinger(a, a, 2) == pytest.approx(0.0)
    assert hellinger(a, b, 2) == pytest.approx(1.0)


def test_auc_counts_ties_half_and_needs_both_kinds() -> None:
    assert auc(np.r_[0.1, 0.2], np.r_[0.3, 0.4]) == 1.0
    assert auc(np.r_[0.5, 0.1], np.r_[0.3]) == 0.5
    assert auc(np.r_[0.3], np.r_[0.3]) == 0.5
    assert auc(np.zeros(0), np.r_[0.3]) is None


def test_choice_uses_only_the_sets_given() -> None:
    same = np.r_[True, False]
    a_wins = {"same": same, "dist": {"a": np.r_[0.1, 0.9], "b": np.r_[0.9, 0.1]}}
    b_wins = {"same": same, "dist": {"a": np.r_[0.9, 0.1], "b": np.r_[0.1, 0.9]}}
    assert best([a_wins, a_wins, b_wins], ["a", "b"]) == "a"
    assert best([b_wins], ["a", "b"]) == "b"
    assert pooled([a_wins, b_wins], "a") == 0.5
