"""Garbage-collector settings of the processes a run owns (customer_analytics.gcwork)."""

from __future__ import annotations

import gc

import pytest

from customer_analytics import gcwork


def test_a_build_collects_less_often_and_gives_the_settings_back_even_when_it_fails():
    before = gc.get_threshold()
    assert before != gcwork.THRESHOLDS
    with gcwork.fewer_collections():
        assert gc.get_threshold() == gcwork.THRESHOLDS
    assert gc.get_threshold() == before
    frozen = gc.get_freeze_count()
    with pytest.raises(RuntimeError), gcwork.fewer_collections():
        raise RuntimeError("a notebook failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen  # a process that goes on keeps every object collectable
