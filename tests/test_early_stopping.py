"""Early stopping on synthetic validation curves with distributional overfitting
(in-distribution keeps rising slightly while OOD peaks and then drops), state round trips,
and the cross-process stop agreement."""

from __future__ import annotations

import json
import math
import os
import socket
from collections.abc import Iterator

import numpy as np
import pytest

from mrizoo.errors import InputError
from mrizoo.train.early_stopping import Decision, EarlyStopping, agree_across_processes
from mrizoo.train.recipe import EarlyStoppingSpec

EPOCHS = np.arange(40)
# closed-form curves: ID saturates but keeps a small linear gain; OOD gets a linear decay on top
ID = 0.90 - 0.10 * np.exp(-EPOCHS / 4) + 3e-4 * EPOCHS
OOD = {
    "knee": 0.80 - 0.10 * np.exp(-EPOCHS / 4) - 3e-3 * EPOCHS,  # peaks near epoch 8
    "stanford": 0.70 - 0.20 * np.exp(-EPOCHS / 6) - 2e-3 * EPOCHS,  # peaks later
}
OOD_MEAN = (OOD["knee"] + OOD["stanford"]) / 2


def run(policy: EarlyStopping, upto: int | None = None, start: int = 0) -> list[Decision]:
    out = []
    for e in EPOCHS[start:upto]:
        out.append(policy.update(step=100 * (e + 1), epoch=int(e), id_metric=float(ID[e]),
                                 ood_metrics={k: float(v[e]) for k, v in OOD.items()}))
        if out[-1].stop:
            break
    return out


def test_curves_show_distributional_overfitting() -> None:
    assert np.all(np.diff(ID) > 0)  # in-distribution never stops improving
    peak = int(np.argmax(OOD_MEAN))
    assert 3 < peak < 30 and OOD_MEAN[-1] < OOD_MEAN[peak] - 0.03


@pytest.mark.parametrize("k", [2, 3, 5])
def test_ood_rule_selects_the_ood_peak_and_stops_k_later(k: int) -> None:
    policy = EarlyStopping("ood", metric="ssim", patience=k)
    decisions = run(policy)
    peak = int(np.argmax(OOD_MEAN))
    assert len(decisions) == peak + k + 1 and decisions[-1].stop
    assert [i for i, d in enumerate(decisions) if d.is_best][-1] == peak
    assert policy.best["epoch"] == peak and policy.best["ood"] == pytest.approx(OOD_MEAN[peak])
    assert "distributional overfitting" in decisions[-1].reason
    summary = policy.summary()
    assert summary["stopped"] and summary["stop_epoch"] == peak + k and summary["stop_step"] == 100 * (peak + k + 1)
    assert summary["selected"]["step"] == 100 * (peak + 1)


def test_ood_rule_on_one_named_set() -> None:
    policy = EarlyStopping("ood", patience=3, ood_set="stanford")
    run(policy)
    assert policy.best["epoch"] == int(np.argmax(OOD["stanford"])) != int(np.argmax(OOD["knee"]))
    with pytest.raises(InputError, match="missing"):
        EarlyStopping("ood", ood_set="nyu").update(1, 0, 0.9, {"knee": 0.8})
    with pytest.raises(InputError, match="needs OOD metrics"):
        EarlyStopping("ood").update(1, 0, 0.9, {})


def test_paper_rule_stops_when_the_id_gain_is_marginal() -> None:
    k, min_delta = 3, 2e-3
    policy = EarlyStopping("paper", patience=k, min_delta=min_delta)
    decisions = run(policy)
    # closed form: the gain over k epochs, ID(t) - ID(t-k), first drops below min_delta at
    gains = ID[k:] - ID[:-k]
    expected_stop = int(np.argmax(gains < min_delta)) + k
    assert len(decisions) == expected_stop + 1 and decisions[-1].stop
    assert not any(d.stop for d in decisions[:-1])
    assert all(d.is_best for d in decisions)  # ID improves at every validation: the latest is kept
    assert "in-distribution" in policy.reason
    # the paper's rule trains well past the OOD optimum on these curves
    assert expected_stop > int(np.argmax(OOD_MEAN)) + k


def test_none_rule_never_stops_and_keeps_best_id() -> None:
    policy = EarlyStopping("none")
    decisions = run(policy)
    assert len(decisions) == len(EPOCHS) and not any(d.stop for d in decisions)
    assert policy.best["epoch"] == len(EPOCHS) - 1


def test_lower_is_better_metric_and_nan() -> None:
    policy = EarlyStopping("paper", metric="nmse", patience=2, min_delta=1e-3)
    values = [0.1, 0.05, float("nan"), 0.045, 0.0449, 0.0448]
    decisions = [policy.update(i, i, v) for i, v in enumerate(values)]
    assert [d.is_best for d in decisions] == [True, True, False, True, True, True]
    # best-so-far gain over 2 validations: index 4: 0.05 -> 0.0449 (5.1e-3); index 5: 0.045 -> 0.0448 (2e-4)
    assert [d.stop for d in decisions] == [False, False, False, False, False, True]
    assert policy.best["index"] == 5
    assert policy.update(9, 9, 0.01).stop  # once stopped, stays stopped


def test_state_round_trip_resumes_identically() -> None:
    full = EarlyStopping("ood", patience=3)
    reference = run(full)
    first = EarlyStopping("ood", patience=3)
    run(first, upto=6)
    state = json.loads(json.dumps(first.state_dict()))  # plain data, storable in any checkpoint
    resumed = EarlyStopping("paper", patience=9)
    resumed.load_state_dict(state)
    rest = run(resumed, start=6)
    assert [(d.stop, d.is_best) for d in reference[6:]] == [(d.stop, d.is_best) for d in rest]
    assert resumed.summary() == full.summary() and resumed.state_dict() == full.state_dict()


def test_from_spec_and_bad_settings() -> None:
    policy = EarlyStopping.from_spec(EarlyStoppingSpec(rule="ood", metric="psnr", patience=4, ood_set="nyu"))
    assert (policy.rule, policy.metric, policy.patience, policy.ood_set) == ("ood", "psnr", 4, "nyu")
    assert policy.higher_is_better
    for kwargs in ({"rule": "best"}, {"patience": 0}, {"min_delta": -1.0}, {"metric": "lpips"}):
        rule = kwargs.pop("rule", "paper")
        with pytest.raises(InputError):
            EarlyStopping(rule, **kwargs)
    assert not EarlyStopping("paper", metric="lpips", higher_is_better=False).higher_is_better


# ----------------------------------------------------------------------------- processes


def test_agree_without_processes_is_identity() -> None:
    assert agree_across_processes(True) is True and agree_across_processes(False) is False


def _agree_worker(rank: int, world: int, port: int, queue) -> None:  # pragma: no cover (child process)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world), OMP_NUM_THREADS="1")
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    result = (acc.num_processes, agree_across_processes(rank == 1, acc), agree_across_processes(False, acc),
              agree_across_processes(rank == 0, None))  # the last one through torch.distributed directly
    queue.put((rank, result))
    acc.wait_for_everyone()


def test_any_rank_stopping_stops_all_ranks() -> None:
    pytest.importorskip("accelerate")
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_agree_worker, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=90) for _ in procs)
    for p in procs:
        p.join(30)
    assert results == [(0, (2, True, False, True)), (1, (2, True, False, True))]
    assert all(p.exitcode == 0 for p in procs)


# ----------------------------------------------------------------------------- Lin & Heckel 2024, Figure 8

# U-Net trained on brain, evaluated on knee, epochs 1..40: ID SSIM keeps rising slowly; OOD SSIM rises
# with it, peaks at epoch 15, then declines. OOD(e) = c - A exp(-e/tau) - d e peaks at tau ln(A / (tau d)).
FIG8_EPOCHS = np.arange(1, 41)
FIG8_TAU, FIG8_A, FIG8_PEAK = 5.0, 0.15, 15.0
FIG8_D = FIG8_A / (FIG8_TAU * math.exp(FIG8_PEAK / FIG8_TAU))  # puts the OOD peak at epoch 15
FIG8_ID_A, FIG8_ID_SLOPE = 0.05, 2.5e-4
FIG8_ID = 0.93 - FIG8_ID_A * np.exp(-FIG8_EPOCHS / FIG8_TAU) + FIG8_ID_SLOPE * FIG8_EPOCHS
FIG8_OOD = 0.80 - FIG8_A * np.exp(-FIG8_EPOCHS / FIG8_TAU) - FIG8_D * FIG8_EPOCHS


def run_fig8(policy: EarlyStopping) -> list[Decision]:
    out = []
    for i, e in enumerate(FIG8_EPOCHS):
        out.append(policy.update(step=1000 * int(e), epoch=int(e), id_metric=float(FIG8_ID[i]),
                                 ood_metrics={"knee": float(FIG8_OOD[i])}))
        if out[-1].stop:
            break
    return out


def test_figure8_curves_have_the_papers_shape() -> None:
    assert np.all(np.diff(FIG8_ID) > 0) and np.all(np.diff(FIG8_ID)[20:] < 1e-3)  # slow, steady ID gain
    assert FIG8_EPOCHS[int(np.argmax(FIG8_OOD))] == 15
    assert FIG8_OOD[-1] < FIG8_OOD.max() - 0.02  # a clear OOD decline by epoch 40


@pytest.mark.parametrize("k", [1, 3, 5])
def test_figure8_ood_rule_keeps_the_peak_and_stops_k_after(k: int) -> None:
    policy = EarlyStopping("ood", patience=k, min_delta=1e-4)
    decisions = run_fig8(policy)
    assert policy.best["epoch"] == 15 and policy.best["step"] == 15000
    assert decisions[-1].stop and policy.summary()["stop_epoch"] == 15 + k
    assert not any(d.stop for d in decisions[:-1])
    assert "distributional overfitting" in policy.reason  # ID still gained while OOD dropped


@pytest.mark.parametrize(("k", "min_delta"), [(3, 1e-3), (5, 2e-3)])
def test_figure8_paper_rule_stop_epoch_from_closed_form(k: int, min_delta: float) -> None:
    # ID rises monotonically, so the gain over k validations is ID(e) - ID(e - k)
    # = A exp(-e/tau) (exp(k/tau) - 1) + k slope; it first drops below min_delta at the first epoch after
    e_cross = FIG8_TAU * math.log(FIG8_ID_A * (math.exp(k / FIG8_TAU) - 1) / (min_delta - k * FIG8_ID_SLOPE))
    expected = math.floor(e_cross) + 1
    assert expected - e_cross > 1e-3 and 1 + k <= expected <= 40
    policy = EarlyStopping("paper", patience=k, min_delta=min_delta)
    decisions = run_fig8(policy)
    assert policy.summary()["stop_epoch"] == expected and decisions[-1].stop
    assert policy.best["epoch"] == expected  # ID's best is the latest
    # trained past the OOD optimum: the paper rule's pick is worse on knee than the OOD rule's
    assert expected > 15 + k and FIG8_OOD[expected - 1] < FIG8_OOD.max() - 5e-3


# ----------------------------------------------------------------------------- noise within the tolerance

NOISE_MIN_DELTA = 1e-3
NOISE_AMP = 0.45 * NOISE_MIN_DELTA  # |noise| <= amp: peak-to-peak 0.9 min_delta, inside the tolerance
NOISE_LEN = 150


def _noisy_run(rule: str, k: int, id_curve: np.ndarray, ood_curve: np.ndarray) -> EarlyStopping:
    policy = EarlyStopping(rule, patience=k, min_delta=NOISE_MIN_DELTA)
    for i in range(len(id_curve)):
        if policy.update(i, i, float(id_curve[i]), {"knee": float(ood_curve[i])}).stop:
            break
    return policy


def _noise_cases() -> Iterator[np.ndarray]:
    """Uniform noise for many seeds, plus the worst case: alternating +amp / -amp."""
    for seed in range(25):
        rng = np.random.default_rng(seed)
        yield rng.uniform(-NOISE_AMP, NOISE_AMP, (2, NOISE_LEN))
    alt = NOISE_AMP * np.where(np.arange(NOISE_LEN) % 2 == 0, 1.0, -1.0)
    yield np.stack([alt, -alt])


@pytest.mark.parametrize("k", [2, 3, 5])
def test_never_stops_on_noise_within_the_tolerance(k: int) -> None:
    # a trend gaining 2 min_delta per k validations beats the worst noise (min_delta + 2 amp = 1.9 min_delta
    # for the paper rule, 2 amp for the OOD rule): neither rule may stop; the other curve is flat
    t = np.arange(NOISE_LEN)
    rising = 0.85 + (2 * NOISE_MIN_DELTA / k) * t
    flat = np.full(NOISE_LEN, 0.75)
    for noise_id, noise_ood in _noise_cases():
        paper = _noisy_run("paper", k, rising + noise_id, flat + noise_ood)
        ood = _noisy_run("ood", k, flat + noise_id, rising + noise_ood)
        assert not paper.stopped and len(paper.history) == NOISE_LEN, paper.reason
        assert not ood.stopped and len(ood.history) == NOISE_LEN, ood.reason


@pytest.mark.parametrize("k", [2, 3, 5])
def test_noise_within_the_tolerance_is_not_mistaken_for_progress(k: int) -> None:
    flat = np.full(NOISE_LEN, 0.85)
    for noise_id, noise_ood in _noise_cases():
        paper = _noisy_run("paper", k, flat + noise_id, flat + noise_ood)
        assert paper.stopped and paper.stop_index == k  # no gain >= min_delta in the first k validations
        ood = _noisy_run("ood", k, flat + noise_id, flat + noise_ood)
        assert ood.stopped and "stalled" in ood.reason  # a plateau, not distributional overfitting
