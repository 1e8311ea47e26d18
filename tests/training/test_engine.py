"""The training loop alone: interruption, resume, early stopping, accumulation."""

import numpy as np
import pytest
import torch
from torch import nn

from lmworks.training.config import TrainConfig
from lmworks.training.engine import STATE_FILE, Trainer
from lmworks.training.objectives import ClassificationObjective


class Bag(nn.Module):
    """A tiny bag-of-embeddings classifier: the loop does not care what it trains."""

    def __init__(self):
        super().__init__()
        self.config = type("C", (), {"num_labels": 2})()
        self.emb = nn.Embedding(50, 8)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(8, 2)

    def forward(self, ids, mask):
        m = mask.unsqueeze(-1).float()
        return self.head(self.drop((self.emb(ids) * m).sum(1) / m.sum(1)))


def data(n=96):
    rng = np.random.default_rng(0)
    ids = [rng.integers(1, 50, rng.integers(2, 9)).tolist() for _ in range(n)]
    y = torch.tensor([int(sum(x) % 2) for x in ids])
    return ids, y


def objective(ids, y, cfg, loss_fn):
    return ClassificationObjective(ids, y, pad_id=0, loss_fn=loss_fn, batch_size=cfg.batch_size, seed=cfg.seed)


def config(**kw):
    base = dict(epochs=3, batch_size=8, lr=0.05, head_lr_multiplier=1.0, eval_every=4, patience=0,
                log_every=1, num_threads=1)
    return TrainConfig(**{**base, **kw})


def make(cfg, ckpt=None, interrupt_at=None, ids_y=None):
    torch.manual_seed(0)
    net = Bag()
    calls = {"n": 0}
    ce = nn.CrossEntropyLoss()

    def loss_fn(logits, y):
        calls["n"] += 1
        if interrupt_at is not None and calls["n"] == interrupt_at:
            raise KeyboardInterrupt
        return ce(logits, y)

    score = {"i": 0}

    def eval_fn(network):
        score["i"] += 1
        return -float(sum(p.abs().sum() for p in network.parameters())), {"i": score["i"]}

    ids, y = ids_y or data()
    return net, Trainer(net, cfg, objective(ids, y, cfg, loss_fn), eval_fn=eval_fn, checkpoint_dir=ckpt,
                        progress=False)


def test_interrupt_then_resume_equals_uninterrupted(tmp_path):
    ids, y = data()
    cfg = config()
    net_a, trainer_a = make(cfg, tmp_path / "a")
    full = trainer_a.train()
    assert not full.state.interrupted

    net_b, trainer_b = make(cfg, tmp_path / "b", interrupt_at=15)
    part = trainer_b.train()
    assert part.state.interrupted and part.state.step == 14
    assert (tmp_path / "b" / STATE_FILE).is_file()

    net_c, trainer_c = make(cfg, tmp_path / "b")
    resumed = trainer_c.train(resume=True)
    assert resumed.state.step == full.state.step
    assert resumed.state.best_step == full.state.best_step
    for (k, a), (_, c) in zip(net_a.state_dict().items(), net_c.state_dict().items()):
        torch.testing.assert_close(a, c, msg=k)


def test_interrupt_keeps_best_weights(tmp_path):
    ids, y = data()
    net, trainer = make(config(), tmp_path, interrupt_at=30)
    result = trainer.train()
    assert result.state.interrupted and result.state.best_step > 0
    for k, v in trainer.best_state.items():
        torch.testing.assert_close(net.state_dict()[k], v)


def test_resume_refuses_changed_settings(tmp_path):
    from lmworks.errors import ConfigError

    ids, y = data()
    _, trainer = make(config(), tmp_path, interrupt_at=10)
    trainer.train()
    _, other = make(config(lr=0.01), tmp_path)
    with pytest.raises(ConfigError, match=r"settings differ .*\(lr\)"):
        other.train(resume=True)
    _, fresh = make(config(), tmp_path / "none")
    with pytest.raises(ConfigError, match="no checkpoint"):
        fresh.train(resume=True)


def test_early_stopping(tmp_path):
    ids, y = data()
    net, trainer = make(config(patience=1, epochs=10))
    trainer.eval_fn = lambda network: (0.5, {})
    result = trainer.train()
    assert result.state.stopped_early
    assert result.state.step == 8  # best at the first eval (4), stop after one more without gain


def test_gradient_accumulation_matches_big_batch():
    """2 accumulated batches of 32 give the same update as one batch of 64."""
    ids, y = data(64)

    def run(batch, accum):
        torch.manual_seed(0)
        net = Bag()
        net.drop.p = 0.0
        cfg = config(batch_size=batch, grad_accum_steps=accum, epochs=2, eval_every=0, max_grad_norm=0,
                     warmup_ratio=0.0)
        result = Trainer(net, cfg, objective(ids, y, cfg, nn.CrossEntropyLoss()), progress=False).train()
        return net, result

    (a, ra), (b, rb) = run(64, 1), run(32, 2)
    assert ra.total_steps == rb.total_steps == 2
    torch.manual_seed(0)
    before = Bag()
    for (k, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(pa, pb, atol=1e-5, rtol=1e-4, msg=k)
    assert not torch.allclose(a.head.weight, before.head.weight)


def test_layer_wise_lr_decay_groups(tiny_encoder):
    from lmworks.heads import build_network
    from lmworks.modes import Pooling
    from lmworks.training.optim import layer_depth, layer_lr_scale, param_groups

    assert layer_depth("encoder.embeddings.word_embeddings.weight", 6) == 0
    assert layer_depth("encoder.encoder.layer.0.attention.self.query.weight", 6) == 1
    assert layer_depth("encoder.encoder.layer.5.output.dense.weight", 6) == 6
    assert layer_depth("encoder.pooler.dense.weight", 6) == 7
    assert layer_lr_scale(6, 6, 0.8) == 1.0 and layer_lr_scale(0, 6, 0.8) == pytest.approx(0.8 ** 6)
    net = build_network(tiny_encoder, ["a", "b"], pooling=Pooling.MEAN, multi_label=False)
    groups = param_groups(net, TrainConfig(lr=1e-4, layer_lr_decay=0.5, head_lr_multiplier=10))
    lrs = sorted({round(g["lr"], 10) for g in groups})
    # 2 layers: embeddings 0.25x, layer0 0.5x, layer1 and pooler 1x, head 10x.
    assert lrs == [2.5e-05, 5e-05, 1e-04, 1e-03]
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))


def test_ctrl_c_during_a_checkpoint_write_waits_for_the_write():
    """SIGINT inside the protected block is held until the block ends, then raised."""
    import os
    import signal

    import pytest

    from lmworks.runtime import deferred_interrupt

    finished = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            finished.append("write completed")
    assert finished == ["write completed"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_freeze_embeddings_keeps_the_vocabulary_matrix_and_trains_the_rest(tiny_encoder, sentiment_data,
                                                                          tiny_fast_options):
    from lmworks import TextClassifier
    from lmworks.errors import ConfigError

    (texts, labels), (dev_texts, dev_labels) = sentiment_data
    clf = TextClassifier(str(tiny_encoder), **{**tiny_fast_options, "epochs": 1}, freeze_embeddings=True, blend="none")
    from transformers import AutoModel

    net_before = AutoModel.from_pretrained(tiny_encoder)
    clf.fit(texts, labels, dev_texts, dev_labels, progress=False)
    encoder = clf.backend_.network.encoder
    assert torch.equal(encoder.embeddings.word_embeddings.weight, net_before.embeddings.word_embeddings.weight)
    changed = not torch.equal(encoder.encoder.layer[0].attention.self.query.weight,
                              net_before.encoder.layer[0].attention.self.query.weight)
    assert changed  # the rest of the encoder did train
    with pytest.raises(ConfigError, match="frozen embeddings"):
        TrainConfig(adversarial="fgm", freeze_embeddings=True)


def test_sgd_optimizer_steps_in_proportion_to_the_gradient():
    """SGD (the federated clients' optimiser): one step moves the head by -lr * grad, unlike AdamW."""
    from lmworks.errors import ConfigError
    from lmworks.training.optim import make_optimizer

    ids, y = data(32)
    torch.manual_seed(0)
    net = Bag()
    net.drop.p = 0.0
    cfg = config(optimizer="sgd", lr=0.1, batch_size=32, epochs=1, eval_every=0, max_grad_norm=0, warmup_ratio=0.0,
                 weight_decay=0.0)
    assert isinstance(make_optimizer(net, cfg), torch.optim.SGD)
    assert isinstance(make_optimizer(net, config()), torch.optim.AdamW)
    before = net.head.weight.detach().clone()
    from lmworks.tokens import pad_batch

    batch = pad_batch(ids, 0)
    nn.CrossEntropyLoss()(net(*batch), y).backward()
    grad = net.head.weight.grad.detach().clone()
    net.zero_grad()
    Trainer(net, cfg, objective(ids, y, cfg, nn.CrossEntropyLoss()), progress=False).train()
    torch.testing.assert_close(net.head.weight, before - 0.1 * grad, atol=1e-6, rtol=1e-5)
    with pytest.raises(ConfigError, match="optimizer"):
        TrainConfig(optimizer="lion")


def test_logit_adjustment_trains_against_the_label_prior():
    from lmworks.training.losses import log_prior, logit_adjusted

    targets = np.array([0] * 98 + [1] * 2)
    prior = np.exp(log_prior(targets, 3))
    assert prior == pytest.approx([99 / 103, 3 / 103, 1 / 103])  # add-one: the unseen class stays finite
    loss = logit_adjusted(nn.CrossEntropyLoss(), targets, 3)
    neutral = torch.zeros(1, 3)
    # with neutral logits the majority class is already "explained" by the prior: little loss, little gradient
    assert loss(neutral, torch.tensor([0])) < 0.05 < loss(neutral, torch.tensor([1]))
    from lmworks.errors import ConfigError

    with pytest.raises(ConfigError, match="single-label"):
        TrainConfig(logit_adjustment=True, multi_label=True)


def test_label_smoothing_targets_follow_the_formula():
    from lmworks.errors import ConfigError
    from lmworks.training.losses import make_loss

    targets = np.array([0, 1, 2])
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.3, -0.2]])
    y = torch.tensor([0, 2])
    smoothed = make_loss(targets, 3, multi_label=False, balanced=False, label_smoothing=0.3)
    expected_targets = torch.full((2, 3), 0.1)
    expected_targets[0, 0] = expected_targets[1, 2] = 0.7 + 0.1  # 1 - x on the true class, plus its x / K share
    expected = -(expected_targets * torch.log_softmax(logits, 1)).sum(1).mean()
    torch.testing.assert_close(smoothed(logits, y), expected)
    # multi-label: each 0/1 target moves x / 2 towards one half
    multi = make_loss(np.eye(3), 3, multi_label=True, balanced=False, label_smoothing=0.2)
    y_multi = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    want = nn.functional.binary_cross_entropy_with_logits(logits, y_multi * 0.8 + 0.1)
    torch.testing.assert_close(multi(logits, y_multi), want)
    with pytest.raises(ConfigError, match="label_smoothing"):
        TrainConfig(label_smoothing=1.0)
