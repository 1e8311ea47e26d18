"""Federated fine-tuning on Flower: real server and client processes (SuperLink, SuperNodes) over 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

from conftest import free_port, make_sentiment  # noqa: E402
from lmworks import TextClassifier  # noqa: E402
from lmworks.errors import ConfigError  # noqa: E402
from lmworks.federated import FederatedConfig, dirichlet_split  # noqa: E402

LOCAL = ["--optimizer", "adamw", "--lr", "3e-3", "--batch-size", "16", "--max-length", "32", "--local-epochs", "1"]


def write(path: Path, texts, labels) -> Path:
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels)))
    return path


def lmworks(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lmworks", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def server(tmp_path: Path, encoder: Path, port: int, *, rounds: int, min_clients: int = 1,
           output: str = "global") -> subprocess.Popen:
    test = write(tmp_path / "server_eval.jsonl", *make_sentiment(60, seed=2))
    return lmworks("federated", "server", "--address", f"127.0.0.1:{port}", "--eval", str(test), "--model",
                   str(encoder), "--rounds", str(rounds), "--min-clients", str(min_clients), "--output",
                   str(tmp_path / output), *LOCAL)


def wait_for(predicate, timeout: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def rounds_logged(directory: Path) -> int:
    log = directory / "federated_log.jsonl"
    return len(log.read_text().splitlines()) if log.exists() else 0


# -- the non-IID split -----------------------------------------------------------------------
def run_simulate(tmp_path: Path, encoder: Path, *args: str, train_rows: int = 120) -> None:
    """``lmworks federated simulate`` on generated train/eval files, 2 clients; it must succeed."""
    write(tmp_path / "train.jsonl", *make_sentiment(train_rows, seed=1))
    write(tmp_path / "test.jsonl", *make_sentiment(40, seed=2))
    proc = subprocess.run(
        [sys.executable, "-m", "lmworks", "federated", "simulate", str(tmp_path / "train.jsonl"), "--eval",
         str(tmp_path / "test.jsonl"), "--clients", "2", "--model", str(encoder), "--client-threads", "1", *args],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


SGD = ["--optimizer", "sgd", "--lr", "0.1", "--batch-size", "16", "--max-length", "32"]


def test_dirichlet_split_partitions_rows_and_skews_with_small_alpha():
    labels = [str(i % 4) for i in range(2000)]
    shards = dirichlet_split(labels, 5, 1.0, seed=3)
    everything = np.concatenate(shards)
    assert sorted(everything.tolist()) == list(range(2000))  # every row exactly once
    assert [s.tolist() for s in shards] == [s.tolist() for s in dirichlet_split(labels, 5, 1.0, seed=3)]

    def skew(alpha: float) -> float:  # mean share of each client's most common label
        parts = dirichlet_split(labels, 5, alpha, seed=0)
        return float(np.mean([Counter(labels[i] for i in p).most_common(1)[0][1] / len(p) for p in parts]))

    assert skew(0.1) > skew(1.0) > skew(100.0)
    assert skew(100.0) < 0.35  # near IID: about 1/4
    assert min(len(s) for s in dirichlet_split(labels, 8, 0.3, seed=1, min_size=20)) >= 20


def test_dirichlet_split_rejects_impossible_requests():
    with pytest.raises(ConfigError, match="alpha"):
        dirichlet_split(["a", "b"], 2, 0.0)
    with pytest.raises(ConfigError, match="cannot give"):
        dirichlet_split(["a", "b", "a"], 4, 1.0)


def test_round_training_decays_lr_over_rounds_and_varies_the_seed():
    config = FederatedConfig(rounds=4, local_epochs=0.5)
    lrs = [config.round_training(r).lr for r in (1, 2, 3, 4)]
    assert lrs == pytest.approx([config.train.lr * f for f in (1.0, 0.75, 0.5, 0.25)])
    assert config.round_training(1).seed != config.round_training(2).seed
    assert config.round_training(1).epochs == 0.5 and config.round_training(1).blend == "none"
    with pytest.raises(ConfigError, match="tfidf"):
        FederatedConfig(train=config.train.replace(model="tfidf"))


def test_local_steps_give_every_client_the_same_number_of_steps(tiny_encoder):
    from lmworks.federated.model import FederatedModel

    config = FederatedConfig(rounds=2, local_steps=3, server_momentum=0.9)
    round_cfg = config.round_training(1)
    assert round_cfg.max_steps == 3 and round_cfg.warmup_ratio == 0.0
    with pytest.raises(ConfigError, match="FedProx"):
        FederatedConfig(proximal_mu=0.1, server_momentum=0.9)
    with pytest.raises(ConfigError, match="server_momentum"):
        FederatedConfig(server_momentum=1.0)
    # a small and a large shard both take exactly 3 optimiser steps
    train = round_cfg.replace(model=str(tiny_encoder), batch_size=8, max_length=32, num_threads=1)
    model = FederatedModel(["neg", "pos"], train)
    for n in (20, 200):
        texts, labels = make_sentiment(n, seed=n)
        targets = np.asarray([["neg", "pos"].index(y) for y in labels])
        assert model.train(texts, targets, train)["steps"] == 3


def test_server_momentum_applies_fedavgm_to_the_averaged_update():
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server.strategy import FedAvgM

    from lmworks.federated.server import CheckedStrategy

    strategy = CheckedStrategy(FedAvgM(server_momentum=0.5, server_learning_rate=1.0,
                                       initial_parameters=ndarrays_to_parameters([np.zeros(2, np.float32)])),
                               fingerprint="ours", on_round=lambda *a: None)

    class Proxy:
        cid = "client"

    def result(value: float):
        return Proxy(), FitRes(Status(Code.OK, ""), ndarrays_to_parameters([np.full(2, value, np.float32)]), 10,
                               {"fingerprint": "ours", "loss": 0.5})

    first, _ = strategy.aggregate_fit(1, [result(1.0), result(3.0)], [])  # average update +2
    assert parameters_to_ndarrays(first)[0] == pytest.approx([2.0, 2.0])
    second, _ = strategy.aggregate_fit(2, [result(3.0), result(3.0)], [])  # update +1, momentum 0.5 * 2
    assert parameters_to_ndarrays(second)[0] == pytest.approx([4.0, 4.0])


def test_scaffold_step_distance_matches_torch_sgd_with_momentum_and_schedule():
    """Option II divides the distance moved by this coefficient: it must be what SGD really does."""
    import torch

    from lmworks.federated.scaffold import unit_step_distance, updated_control
    from lmworks.training.schedule import linear_warmup_decay

    assert unit_step_distance([1.0, 1.0], 0.0) == 2.0
    assert unit_step_distance([1.0, 1.0], 0.9) == pytest.approx(2.9)
    steps, lr = 6, 0.03
    w = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([w], lr=lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: linear_warmup_decay(s, warmup_steps=0, total_steps=steps))
    for _ in range(steps):
        opt.zero_grad()
        (-2.0 * w).sum().backward()  # gradient -2 everywhere
        opt.step()
        sched.step()
    factors = [linear_warmup_decay(s, warmup_steps=0, total_steps=steps) for s in range(steps)]
    coef = unit_step_distance([lr * f for f in factors], 0.9)
    np.testing.assert_allclose(w.detach().numpy(), 2.0 * coef, rtol=1e-5)
    # option II recovers the (constant) local gradient from the move: c_i+ = c_i - c + (x - y)/coef
    x, y = [np.zeros(3, np.float32)], [w.detach().numpy()]
    zero = [np.zeros(3, np.float32)]
    np.testing.assert_allclose(updated_control(x, y, zero, zero, [coef])[0], -2.0, rtol=1e-5)


def test_scaffold_config_combinations():
    with pytest.raises(ConfigError, match="SCAFFOLD"):
        FederatedConfig(scaffold=True, server_momentum=0.9)
    with pytest.raises(ConfigError, match="SGD"):
        FederatedConfig(scaffold=True, train=FederatedConfig().train.replace(optimizer="adamw"))
    assert FederatedConfig(scaffold=True).scaffold


# -- real processes --------------------------------------------------------------------------
@pytest.mark.processes
def test_simulate_runs_server_and_clients_as_processes(tmp_path, tiny_encoder):
    """The acceptance path: one command, non-IID split, N real client processes, a global model."""
    write(tmp_path / "train.jsonl", *make_sentiment(360, seed=1))
    write(tmp_path / "test.jsonl", *make_sentiment(80, seed=2))
    out = tmp_path / "global"
    proc = subprocess.run(
        [sys.executable, "-m", "lmworks", "federated", "simulate", str(tmp_path / "train.jsonl"), "--eval",
         str(tmp_path / "test.jsonl"), "--clients", "3", "--dirichlet-alpha", "1.0", "--rounds", "3", "--model",
         str(tiny_encoder), *LOCAL, "--client-threads", "1", "--output", str(out), "--workdir",
         str(tmp_path / "work"), "--json", str(tmp_path / "result.json")],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert [c["rows"] for c in result["clients"]] and sum(c["rows"] for c in result["clients"]) == 360
    assert len(result["rounds"]) == 3
    for entry in result["rounds"]:
        assert len(entry["clients"]) == 3  # every client answered every round
        assert sum(c["num_examples"] for c in entry["clients"]) == 360
        assert entry["eval"]["n"] == 80
    # each client trained in its own process on its own shard file
    for i in range(3):
        log = (tmp_path / "work" / f"client_{i}.log").read_text()
        assert "round 3/3: trained on" in log, log
    model = TextClassifier.load(out)  # an ordinary model directory
    assert model.meta_["train_info"]["federated"]["rounds_done"] == 3
    texts, labels = make_sentiment(80, seed=2)
    assert model.evaluate(texts, labels)["accuracy"] == pytest.approx(result["final"]["accuracy"])
    print("federated accuracy by round", [r["eval"]["accuracy"] for r in result["rounds"]])
    assert result["final"]["accuracy"] > 0.7  # learned something from data it never saw centrally
    assert "global model after 3 round(s)" in proc.stdout


class Recorder:
    """A TCP relay between a client and the server that keeps every byte the client sends."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.sent = bytearray()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        try:
            while data := src.recv(65536):
                if record:
                    self.sent.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.mark.processes
def test_only_weights_leave_a_client_even_a_single_class_one(tmp_path, tiny_encoder):
    port = free_port()
    srv = server(tmp_path, tiny_encoder, port, rounds=1)
    wait_for(lambda: listening(port), what="the server")
    relay = Recorder(port)
    marker = "zqxjvprivate"  # appears in every training text of this client
    texts = [f"{marker} {t}" for t, y in zip(*make_sentiment(64, seed=5)) if y == "pos"]
    data = write(tmp_path / "own.jsonl", texts, ["pos"] * len(texts))
    client = subprocess.run([sys.executable, "-m", "lmworks", "federated", "client", "--server",
                             f"127.0.0.1:{relay.port}", str(data), "--threads", "1", "--quiet"],
                            capture_output=True, text=True, timeout=300)
    out, _ = srv.communicate(timeout=120)
    assert client.returncode == 0, client.stderr[-2000:]
    assert srv.returncode == 0, out[-2000:]
    assert "holds only label 'pos'" in client.stderr  # warned, then took part
    sent = bytes(relay.sent)
    assert marker.encode() not in sent and b"great" not in sent and texts[0].encode() not in sent
    model = TextClassifier.load(tmp_path / "global")
    n_weights = sum(int(np.prod(s)) for _, s in json.loads(
        (tmp_path / "global" / "federated_log.jsonl").read_text().splitlines()[0])["clients"][0]["arrays"])
    # the upload is the float32 weights plus a small envelope, nothing else of any size: Flower's
    # Fleet API calls (HTTP since Flower 1.42; each carries ~1 KB of headers: its public key,
    # signature) and the client's liveness probes of the server
    requests = re.findall(rb"(?:GET|POST) (/\S*) HTTP/1\.1\r\n", sent)
    assert requests and all(r == b"/" or r.startswith(b"/v1/fleet/") for r in requests)
    assert 4 * n_weights <= len(sent) < 4 * n_weights + 20_000 + 1_500 * len(requests)
    assert sorted(model.meta_["labels"]) == ["neg", "pos"]
    log = json.loads((tmp_path / "global" / "federated_log.jsonl").read_text().splitlines()[0])
    assert set(log["clients"][0]["metrics"]) == {"loss", "train_seconds", "fingerprint"}
    assert log["clients"][0]["num_examples"] == len(texts)


@pytest.mark.processes
def test_client_with_an_empty_shard_refuses_before_connecting(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    proc = subprocess.run([sys.executable, "-m", "lmworks", "federated", "client", "--server",
                           f"127.0.0.1:{free_port()}", str(empty)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == f"lmworks: error: {empty}: no rows"


@pytest.mark.processes
def test_client_exits_clearly_when_the_server_goes_away_mid_run(tmp_path, tiny_encoder):
    port = free_port()
    srv = server(tmp_path, tiny_encoder, port, rounds=50)
    data = write(tmp_path / "own.jsonl", *make_sentiment(96, seed=6))
    client = lmworks("federated", "client", "--server", f"127.0.0.1:{port}", str(data), "--threads", "1",
                     "--quiet")
    try:
        wait_for(lambda: rounds_logged(tmp_path / "global") >= 1, what="the first round's checkpoint")
    finally:
        srv.kill()  # no goodbye: the server vanishes mid-federation
        srv.communicate()
    out, _ = client.communicate(timeout=120)
    assert client.returncode == 1
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"lmworks: error: lost the federated server at 127.0.0.1:{port} after round "), last
    assert "of 50" in last and "Traceback" not in out
    # the global model on disk is a complete earlier round, not half a write
    model = TextClassifier.load(tmp_path / "global")
    assert model.meta_["train_info"]["federated"]["rounds_done"] >= 1


@pytest.mark.processes
def test_client_with_another_model_is_refused(tmp_path, tiny_encoder, minilm_dir):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(1)  # same architecture, other weights: a different model version
    other = tmp_path / "other-encoder"
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(other)
    AutoTokenizer.from_pretrained(minilm_dir, local_files_only=True).save_pretrained(other)
    port = free_port()
    srv = server(tmp_path, tiny_encoder, port, rounds=1)
    data = write(tmp_path / "own.jsonl", *make_sentiment(48, seed=7))
    try:
        client = subprocess.run([sys.executable, "-m", "lmworks", "federated", "client", "--server",
                                 f"127.0.0.1:{port}", str(data), "--model", str(other), "--threads", "1",
                                 "--quiet"], capture_output=True, text=True, timeout=300)
    finally:
        srv.kill()
        srv.communicate()
    assert client.returncode == 1
    last = client.stderr.strip().splitlines()[-1]
    assert last.startswith("lmworks: error: this client's model") and "differs from the server's" in last, last
    assert "Traceback" not in client.stderr
    log = tmp_path / "global" / "federated_log.jsonl"
    entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert all(e["clients"] == [] for e in entries)  # nothing from it was ever averaged


def test_server_averages_by_examples_and_drops_updates_from_another_model():
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server.strategy import FedAvg

    from lmworks.federated.server import CheckedStrategy

    seen = []
    strategy = CheckedStrategy(FedAvg(), fingerprint="ours",
                               on_round=lambda r, ok, failed: seen.append((len(ok), len(failed))))

    class Proxy:
        cid = "client"

    def result(value: float, n: int, fingerprint: str):
        return Proxy(), FitRes(Status(Code.OK, ""), ndarrays_to_parameters([np.full(3, value, np.float32)]), n,
                               {"fingerprint": fingerprint, "loss": 0.5})

    params, _ = strategy.aggregate_fit(1, [result(1.0, 10, "ours"), result(4.0, 30, "ours"),
                                           result(100.0, 1000, "theirs")], [])
    assert parameters_to_ndarrays(params)[0] == pytest.approx(np.full(3, (10 * 1.0 + 30 * 4.0) / 40))
    assert seen == [(2, 1)]


@pytest.mark.processes
def test_simulate_with_flower_differential_privacy_and_server_momentum(tmp_path, tiny_encoder):
    """--dp-noise-multiplier wraps the strategy (here FedAvgM) in Flower's server-side fixed-clipping DP."""
    run_simulate(tmp_path, tiny_encoder, "--rounds", "1", *LOCAL, "--dp-noise-multiplier", "0.5",
                 "--dp-clipping-norm", "2", "--local-steps", "2", "--server-momentum", "0.5",
                 "--output", str(tmp_path / "dp"))
    recorded = TextClassifier.load(tmp_path / "dp").meta_["train_info"]["federated"]
    assert recorded["dp_noise_multiplier"] == 0.5 and recorded["dp_clipping_norm"] == 2.0
    assert recorded["local_steps"] == 2 and recorded["server_momentum"] == 0.5
    assert recorded["rounds_done"] == 1


@pytest.mark.processes
def test_simulate_with_scaffold_exchanges_weights_and_control_variates(tmp_path, tiny_encoder):
    run_simulate(tmp_path, tiny_encoder, "--rounds", "2", *SGD, "--local-steps", "3", "--scaffold",
                 "--no-logit-adjustment", "--output", str(tmp_path / "sc"), "--json", str(tmp_path / "result.json"),
                 train_rows=160)
    result = json.loads((tmp_path / "result.json").read_text())
    n_weights = len(TextClassifier.load(tmp_path / "sc").backend_.network.state_dict())
    for entry in result["rounds"]:
        assert len(entry["clients"]) == 2
        for client in entry["clients"]:
            shapes = client["arrays"]
            assert len(shapes) % 2 == 0 and shapes[: len(shapes) // 2] == shapes[len(shapes) // 2:]
            assert len(shapes) // 2 <= n_weights  # weights, then one control variate per weight
    assert TextClassifier.load(tmp_path / "sc").meta_["train_info"]["federated"]["scaffold"] is True


def test_server_adam_takes_adamw_steps_on_the_averaged_update(tiny_encoder):
    """FedAdam: the first AdamW step moves every weight by its group's lr towards the clients' average."""
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server.strategy import FedAvg

    from lmworks.federated.model import FederatedModel
    from lmworks.federated.server import CheckedStrategy
    from lmworks.federated.server_adam import ServerAdam

    config = FederatedConfig(rounds=10, local_steps=1, server_adam_lr=1e-3)
    model = FederatedModel(["neg", "pos"], config.round_training(1).replace(model=str(tiny_encoder)))
    start = model.get_arrays()
    strategy = CheckedStrategy(FedAvg(initial_parameters=ndarrays_to_parameters(start)), fingerprint="ours",
                               on_round=lambda *a: None, server_step=ServerAdam(model, lr=1e-3, rounds=10).step)
    strategy.initialize_parameters(None)

    class Proxy:
        cid = "client"

    def result(shift: float, n: int):
        arrays = [a + np.float32(shift) for a in start]
        return Proxy(), FitRes(Status(Code.OK, ""), ndarrays_to_parameters(arrays), n, {"fingerprint": "ours"})

    # clients moved every weight by -1 and +3: the example-weighted average moved it by +2,
    # and the server steps towards it by the learning rate, not by 2
    params, _ = strategy.aggregate_fit(1, [result(-1.0, 10), result(3.0, 10)], [])
    moved = [new - old for new, old in zip(parameters_to_ndarrays(params), start)]
    for name, delta, old in zip(model.names, moved, start):
        lr = 1e-2 if name.startswith("head.") else 1e-3  # lmworks train's head multiplier (10)
        decay = 0.0 if old.ndim < 2 or "LayerNorm" in name else 0.01 * lr * old
        assert np.allclose(delta, lr - decay, atol=1e-6), name
    # the second round's step is smaller (linear decay over the 10 rounds) and in the new direction
    second, _ = strategy.aggregate_fit(2, [result(-1.0, 10), result(-1.0, 10)], [])
    bias = model.names.index(next(n for n in model.names if n.endswith("bias") and not n.startswith("head.")))
    step = parameters_to_ndarrays(second)[bias] - parameters_to_ndarrays(params)[bias]
    assert np.all(step < 0) and np.all(np.abs(step) < 1e-3)


def test_server_adam_config_combinations():
    assert FederatedConfig(server_adam_lr=1e-4).server_optimizer
    assert FederatedConfig(rounds=4, server_adam_lr=1e-4, lr_decay=True).round_training(4).lr == \
        FederatedConfig().train.lr  # the server's schedule decays, not the clients'
    # with FedAdam the clients only compute gradient: the server's AdamW decays and clips, and
    # local decay would reach it disguised as gradient
    local = FederatedConfig(server_adam_lr=1e-4).round_training(1)
    assert (local.weight_decay, local.max_grad_norm, local.head_lr_multiplier) == (0.0, 0.0, 1.0)
    plain = FederatedConfig().round_training(1)
    assert plain.weight_decay == FederatedConfig().train.weight_decay > 0 and plain.max_grad_norm > 0
    for bad in ({"server_momentum": 0.9}, {"proximal_mu": 0.1}, {"scaffold": True}, {"dp_noise_multiplier": 0.5}):
        with pytest.raises(ConfigError):
            FederatedConfig(server_adam_lr=1e-4, **bad)
    with pytest.raises(ConfigError, match="server_adam_lr"):
        FederatedConfig(server_adam_lr=-1.0)


def test_server_adam_reads_the_update_as_the_mean_gradient_and_clips_it(tiny_encoder):
    import torch

    from lmworks.federated.model import FederatedModel
    from lmworks.federated.server_adam import ServerAdam

    config = FederatedConfig(rounds=10, local_steps=1, server_adam_lr=1e-3)
    rng = np.random.default_rng(0)

    def first_moment(max_grad_norm: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
        model = FederatedModel(["neg", "pos"], config.round_training(1).replace(model=str(tiny_encoder)))
        adam = ServerAdam(model, lr=1e-3, rounds=10, local_lr=0.5, max_grad_norm=max_grad_norm)
        start = model.get_arrays()
        grads = [rng.normal(size=a.shape).astype(np.float32) for a in start]
        adam.step(start, [a - 0.5 * g for a, g in zip(start, grads)])  # one local SGD step at lr 0.5
        # Adam's first moment after one step is (1 - beta1) times the gradient it was given
        return grads, [adam.optimizer.state[p]["exp_avg"].numpy() / 0.1 for p in model.parameters]

    grads, seen = first_moment(0.0)
    for g, s in zip(grads, seen):
        np.testing.assert_allclose(s, g, rtol=1e-4, atol=1e-5)
    grads, seen = first_moment(1.0)
    norm = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))
    for g, s in zip(grads, seen):
        np.testing.assert_allclose(s, g / norm, rtol=1e-3, atol=1e-6)
    assert float(torch.linalg.vector_norm(torch.cat([torch.from_numpy(s).flatten() for s in seen]))) == \
        pytest.approx(1.0, rel=1e-3)


@pytest.mark.processes
def test_simulate_with_server_adam(tmp_path, tiny_encoder):
    """End to end, the server steps with Adam: after one round every trained weight moved by the learning rate.

    Adam's first step is ``lr * g / (|g| + eps)``: the same size for every weight with a gradient
    (one round, no warm-up step). Plain averaging would move each weight by ``local_lr * g``, spread
    over orders of magnitude.
    """
    import torch
    from transformers import BertModel

    run_simulate(tmp_path, tiny_encoder, "--rounds", "1", *SGD, "--local-steps", "1", "--server-adam", "1e-3",
                 "--no-logit-adjustment", "--output", str(tmp_path / "adam"))
    model = TextClassifier.load(tmp_path / "adam")
    recorded = model.meta_["train_info"]["federated"]
    assert recorded["server_adam_lr"] == 1e-3 and recorded["local_steps"] == 1 and recorded["rounds_done"] == 1
    name = "encoder.layer.1.intermediate.dense.weight"
    before = BertModel.from_pretrained(tiny_encoder).state_dict()[name]
    after = next(v for k, v in model.backend_.network.state_dict().items() if k.endswith(name))
    moved = (after - before).abs().flatten()
    moved = moved[moved > 1e-6]
    assert moved.numel() > 0.9 * before.numel()
    assert torch.quantile(moved, 0.05) > 0.9e-3 and torch.quantile(moved, 0.95) < 1.1e-3


# -- behaviour of the server-side strategies, through build_strategy (what run_server uses) --------------------
class _Proxy:
    cid = "client"


def _fit_result(arrays, n: int, fingerprint: str):
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters

    return _Proxy(), FitRes(Status(Code.OK, ""), ndarrays_to_parameters([np.asarray(a, np.float32) for a in arrays]),
                            n, {"fingerprint": fingerprint, "loss": 0.5})


def test_differential_privacy_clips_each_update_and_adds_noise_of_the_configured_scale(tiny_encoder):
    """Server-side fixed clipping: every client's update is clipped to C before averaging, then N(0, (z C / m)^2)."""
    from flwr.common import parameters_to_ndarrays

    from lmworks.federated.model import FederatedModel
    from lmworks.federated.server import build_strategy

    def aggregate(noise: float, updates: list[float], rows: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        config = FederatedConfig(rounds=1, min_clients=len(updates), dp_noise_multiplier=noise, dp_clipping_norm=1.0)
        model = FederatedModel(["neg", "pos"], config.train.replace(model=str(tiny_encoder)))
        start = model.get_arrays()
        strategy = build_strategy(config, model)
        strategy.initialize_parameters(None)
        strategy.current_round_params = start  # what configure_fit records before a round
        rng = np.random.default_rng(0)
        directions = [[rng.normal(size=a.shape) for a in start] for _ in updates]
        results = []
        for direction, size, n in zip(directions, updates, rows):
            norm = np.sqrt(sum(float((d ** 2).sum()) for d in direction))
            results.append(_fit_result([a + size * d / norm for a, d in zip(start, direction)], n,
                                       model.fingerprint))
        params, _ = strategy.aggregate_fit(1, results, [])
        expected = []  # clipped to norm 1 each (norm 10 is cut, norm 0.5 is kept), then weighted by rows
        for j, a in enumerate(start):
            moved = sum(n * min(1.0, 1.0 / size) * size * directions[i][j] /
                        np.sqrt(sum(float((d ** 2).sum()) for d in directions[i]))
                        for i, (size, n) in enumerate(zip(updates, rows)))
            expected.append(a + moved / sum(rows))
        return parameters_to_ndarrays(params), expected

    got, expected = aggregate(1e-9, [10.0, 0.5], [30, 10])
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, atol=1e-5)
    got, expected = aggregate(0.5, [10.0, 0.5], [30, 10])
    noise = np.concatenate([(g - e).ravel() for g, e in zip(got, expected)])
    assert noise.size > 100_000
    assert noise.std() == pytest.approx(0.5 * 1.0 / 2, rel=0.02)  # z * C / number of sampled clients
    assert abs(noise.mean()) < 0.01


def test_server_adam_equals_adamw_on_the_mean_update_over_rounds(tiny_encoder):
    """FedAdam through build_strategy: three rounds match AdamW applied by hand to (current - mean) / local lr."""
    from flwr.common import parameters_to_ndarrays

    from lmworks.federated.model import FederatedModel
    from lmworks.federated.server import build_strategy
    from lmworks.training.schedule import linear_warmup_decay

    rounds, lr = 20, 1e-3
    config = FederatedConfig(rounds=rounds, local_steps=1, server_adam_lr=lr)
    model = FederatedModel(["neg", "pos"], config.train.replace(model=str(tiny_encoder)))
    names, weights = model.names, model.get_arrays()
    strategy = build_strategy(config, model)
    strategy.initialize_parameters(None)
    rng = np.random.default_rng(1)
    m = [np.zeros_like(w, dtype=np.float64) for w in weights]
    v = [np.zeros_like(w, dtype=np.float64) for w in weights]
    reference = [w.astype(np.float64) for w in weights]
    local_lr, clip = config.train.lr, config.train.max_grad_norm
    warmup = int(0.06 * rounds)
    for step in range(3):
        current = [r.astype(np.float32) for r in reference]
        clients = [[c - local_lr * rng.normal(scale=0.1, size=c.shape) for c in current] for _ in range(2)]
        params, _ = strategy.aggregate_fit(step + 1, [_fit_result(clients[0], 10, model.fingerprint),
                                                      _fit_result(clients[1], 30, model.fingerprint)], [])
        # FedAvg's example-weighted mean, computed in float32 as Flower does (scaled by each client's share)
        mean = [a.astype(np.float32) * np.float32(0.25) + b.astype(np.float32) * np.float32(0.75)
                for a, b in zip(*clients)]
        grads = [((c - mu) / np.float32(local_lr)).astype(np.float64) for c, mu in zip(current, mean)]
        norm = np.sqrt(sum(float((g ** 2).sum()) for g in grads))
        grads = [g * min(1.0, clip / (norm + 1e-6)) for g in grads]
        factor = linear_warmup_decay(step, warmup_steps=warmup, total_steps=rounds)
        for i, (name, g) in enumerate(zip(names, grads)):
            group_lr = lr * factor * (10.0 if name.startswith("head.") else 1.0)
            decay = 0.0 if weights[i].ndim < 2 or "LayerNorm" in name else 0.01
            reference[i] = reference[i] * (1 - group_lr * decay)
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g ** 2
            m_hat, v_hat = m[i] / (1 - 0.9 ** (step + 1)), v[i] / (1 - 0.999 ** (step + 1))
            reference[i] = reference[i] - group_lr * m_hat / (np.sqrt(v_hat) + 1e-8)
        for name, got, want in zip(names, parameters_to_ndarrays(params), reference):
            np.testing.assert_allclose(got, want, atol=2e-6, rtol=1e-4, err_msg=f"round {step + 1}: {name}")
