"""The history checker (dfs/local/history.py) finds each kind of violation it claims to,
and passes a clean history: the t5 partition tests rely on it."""

import pytest

from dfs.local import history

A, B = "10.0.0.2:18861", "10.0.0.3:18862"


def op(kind, key, value, start, end, status="ok", seq=None, server=A, epoch=1, client="c"):
    return {"client": client, "op": kind, "key": key, "value": value, "seq": seq,
            "start": start, "end": end, "status": status, "server": server, "epoch": epoch,
            "error": ""}


def w(key, seq, start, end, **kw):
    return op("write", key, f"v{seq}", start, end, seq=seq, **kw)


def r(key, value, start, end, **kw):
    return op("read", key, value, start, end, **kw)


def test_a_clean_history_passes():
    ops = [r("k", None, 0.0, 0.1), w("k", 1, 0.2, 0.3), r("k", "v1", 0.4, 0.5),
           w("k", 2, 0.6, 0.7, status="unknown", server=None, epoch=None),
           r("k", "v1", 0.8, 0.9),  # the unknown write may not have happened...
           r("k", "v2", 1.0, 1.1),  # ...or it may have
           w("k", 3, 5.0, 5.1, server=B, epoch=2), r("k", "v3", 5.2, 5.3, server=B, epoch=2)]
    report = history.check(ops)
    assert report.ok, report.problems
    assert (report.acked_writes, report.lost_writes) == (2, 0)
    assert report.leaders == {1: [A], 2: [B]}
    assert report.pause == pytest.approx(5.1 - 1.1)


def test_a_read_missing_an_acknowledged_write_is_a_lost_write():
    ops = [w("k", 1, 0.0, 0.1), w("k", 2, 0.2, 0.3), r("k", "v1", 0.4, 0.5)]
    report = history.check(ops)
    assert report.lost_writes == 1
    assert any("acknowledged write lost" in p and "v2" in p for p in report.problems)


def test_a_final_read_finding_nothing_loses_every_acknowledged_write():
    report = history.check([w("k", 1, 0.0, 0.1), r("k", None, 1.0, 1.1)])
    assert report.lost_writes == 1 and not report.ok


def test_a_read_overlapping_the_write_may_see_the_old_value():
    report = history.check([w("k", 1, 0.0, 0.1), w("k", 2, 0.2, 0.5), r("k", "v1", 0.3, 0.4)])
    assert report.ok, report.problems


@pytest.mark.parametrize("value", ["v9", "<garbled>"])
def test_a_read_of_a_value_never_written_is_found(value):
    report = history.check([w("k", 1, 0.0, 0.1), r("k", value, 0.4, 0.5)])
    assert any("never written" in p for p in report.problems), report.problems


def test_a_read_of_a_value_written_only_later_is_found():
    report = history.check([r("k", "v1", 0.0, 0.1), w("k", 1, 0.2, 0.3)])
    assert any("never written" in p for p in report.problems), report.problems


def test_two_leaders_acknowledging_in_one_epoch_are_found():
    ops = [w("k", 1, 0.0, 0.1, server=A, epoch=3), w("j", 1, 0.2, 0.3, server=B, epoch=3)]
    report = history.check(ops)
    assert any("two leaders acknowledged in epoch 3" in p for p in report.problems)


def test_an_old_leader_serving_after_the_new_one_is_found():
    ops = [w("k", 1, 0.0, 0.1, server=B, epoch=2),
           r("j", None, 0.5, 0.6, server=A, epoch=1)]  # began after epoch 2 had acknowledged
    report = history.check(ops)
    assert any("epoch 1 still served after epoch 2" in p for p in report.problems)


def test_unknown_epochs_and_failed_operations_prove_nothing():
    ops = [w("k", 1, 0.0, 0.1, server=B, epoch=2),
           r("j", None, 0.5, 0.6, server=A, epoch=None),
           r("k", None, 0.7, 0.8, status="fail", server=None, epoch=None)]
    assert history.check(ops).ok


def test_the_pause_is_the_longest_stretch_without_a_success_in_the_window():
    ops = [r("k", None, 0.0, 1.0), r("k", None, 1.0, 4.0, status="fail"), r("k", None, 4.0, 5.0)]
    assert history.pause(ops, 0.0, 6.0) == pytest.approx(4.0)
    assert history.pause(ops, 0.0, 12.0) == pytest.approx(7.0)  # nothing after 5.0
    assert history.pause([], 2.0, 3.0) == pytest.approx(1.0)
