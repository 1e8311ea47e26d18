"""The one keep-best rule: snapshot on improvement only, stop after `patience` misses, restore the best."""

from __future__ import annotations

import torch

from lmworks.training.keep_best import KeepBest


def test_keeps_the_best_weights_and_stops_on_patience():
    net = torch.nn.Linear(2, 1)
    keeper = KeepBest(patience=2)
    seen = []
    for at, score in enumerate([0.5, 0.7, 0.6, 0.7, 0.4], 1):
        with torch.no_grad():
            net.weight.fill_(at)  # the weights of evaluation `at`
        seen.append(keeper.update(score, net.state_dict, at))
        if keeper.exhausted:
            break
    # 0.7 at 2 is the best; 0.7 again at 4 is not better, and the second miss in a row ends it
    assert seen == [True, True, False, False] and (keeper.best_at, keeper.best_score) == (2, 0.7)
    keeper.restore(net.load_state_dict)
    assert torch.all(net.weight == 2)  # a copy was kept, not a view of the live weights


def test_patience_zero_never_stops_and_nothing_to_restore_without_evaluations():
    keeper = KeepBest()
    for at in range(10):
        keeper.update(-float(at), dict, at)
    assert not keeper.exhausted and keeper.best_at == 0 and keeper.since_best == 9
    empty = KeepBest(patience=1)
    empty.restore(lambda state: (_ for _ in ()).throw(AssertionError("restored nothing")))
