"""The benchmark's training-step mode (``--train``): one optimiser step per run instead of one forward.

Taught in `timing`; the per-image loss and the gradient check are those of
`training_with_packed_sequences` (:mod:`anyres_tutorial.training`).

Configurations (recorded under sweep ``"train"``, on the main set's images): ``train-tiled`` (the reference
tiling, and ``train-tiled-<method>`` for every ``--tiling-methods``), ``train-packed-loop`` (the reference)
and ``train-packed-<backend>`` for every other ``--backends`` entry that can run a backward pass on the
device (``attention.resolve(..., backward=True)``); the others are listed in the JSON's ``unavailable`` with
the registry's reason (e.g. ``flex`` on CPU).

One step (:class:`TrainStep`, the timed function): the forward (``forward_tiles`` of the tile batch, or
``forward_packed(images, attention=backend)``), a small seeded linear head (``training.make_head``) on every
encoder image's CLS token (``training.pool``), cross-entropy against the fixed targets ``i % NUM_CLASSES``,
the ``per_image`` reduction (``training.reduce_losses``: every encoder image weighs ``1 / n``), ``backward``
and one ``torch.optim.SGD`` step with ``lr = 0`` (:data:`LR`): the update runs, but the weights do not move,
so every repetition times the same step on the same parameters. The encoder's and the head's parameters
train; the encoder gets ``requires_grad`` for the training steps only.

Correctness before timing (:func:`grad_check`): the step's parameter gradients against those of the same step
run with ``loop`` on the same inputs (each image alone, ``forward_packed(images, "loop")``; for tiled, each
tile alone): per parameter tensor the relative difference ``||g - g_loop|| / ||g_loop||``
(``training.relative_differences``) must stay within :data:`GRAD_TOLERANCE` of the run's dtype (the atol
column of the runner's ``TOLERANCE``: fp32 1e-4, bf16 5e-2). The record in ``checks`` holds the largest
relative difference, the parameter it belongs to and the largest absolute gradient difference. Timing
follows the forward's rules (``timing``); a record's ``flops`` are 3x the forward's (forward + backward).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import replace

import torch
import torch.nn.functional as F

from .. import tiling
from ..encoder import attention
from ..training import make_head, pool, reduce_losses, relative_differences, trainable
from . import timing
from .config import REFERENCE_BACKEND, Config
from .runner import TOLERANCE, BenchCheckError, _Runner
from .workload import Inputs, packed_budget, prepare_packed, prepare_tiled

SWEEP = "train"
NUM_CLASSES = 10  # classes of the head; image i's target is i % NUM_CLASSES
LR = 0.0  # the SGD step runs but leaves the weights as they are: every repetition is the same step
FLOPS_FACTOR = 3  # a training step's FLOPs ~ forward + backward (2x the forward)
GRAD_TOLERANCE = {dtype: atol for dtype, (atol, _) in TOLERANCE.items()}  # max relative gradient difference


def train_configs(s) -> tuple[list[Config], list[dict]]:
    """The training-step configurations that run here (tiled first), and the packed ones that cannot train
    on the device, each with the registry's reason."""
    configs = [Config.tiled(m, train=True) for m in (tiling.DEFAULT_METHOD, *s.tiling_methods)]
    unavailable = []
    for b in s.backends:
        c = Config.packed(b, train=True)
        try:
            attention.resolve(b, s.device, s.dtype, backward=True)
            configs.append(c)
        except ValueError as e:
            unavailable.append(dict(config=c.name, device=s.device.type, reason=str(e)))
    return configs, unavailable


class TrainStep:
    """One training step of ``model`` + ``head`` on the outputs of ``forward()`` (a callable giving one
    ``(1 + N_i, D)`` output per encoder image); call it to run a step (returns the loss). The gradients of the
    latest step stay in ``.grad`` (cleared at the start of the next step): :meth:`grads`."""

    def __init__(self, model, head, forward, num_images: int):
        self.head, self.forward = head, forward
        self.params = trainable(model, head)
        assert self.params, "nothing to train: the encoder and the head need requires_grad"
        self.targets = torch.arange(num_images, device=model.device) % NUM_CLASSES  # (n,)
        self.opt = torch.optim.SGD(list(self.params.values()), lr=LR)
        self.loss: float | None = None

    def __call__(self) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        outs = self.forward()  # n x (1 + N_i, D), or (n, 1 + N, D) for tiles
        logits = self.head(pool(outs)).float()  # (n, NUM_CLASSES)
        losses = F.cross_entropy(logits, self.targets, reduction="none")  # (n,)
        loss = reduce_losses(losses, [o.shape[0] for o in outs], "per_image")
        loss.backward()
        self.opt.step()
        loss = loss.detach()
        self.loss = loss
        return loss

    def grads(self) -> dict[str, torch.Tensor]:
        """The latest step's gradient of every trained parameter (float32 copies; zeros where unused)."""
        return {n: (torch.zeros_like(p) if p.grad is None else p.grad).detach().float().clone()
                for n, p in self.params.items()}


def grad_check(name: str, grads: dict, ref: dict, ref_name: str, s) -> dict:
    """Compare a step's parameter gradients with the reference step's; the check record, or
    :class:`~anyres_tutorial.bench.runner.BenchCheckError` beyond :data:`GRAD_TOLERANCE`."""
    tol = GRAD_TOLERANCE.get(timing.dtype_name(s.dtype), GRAD_TOLERANCE["float32"])
    rel = relative_differences(grads, ref)
    worst = max(rel, key=rel.get)
    abs_diff = max(float((g - ref[n]).abs().max()) for n, g in grads.items())
    ok = math.isfinite(rel[worst]) and rel[worst] <= tol
    rec = dict(config=name, sweep=SWEEP, reference=ref_name, check="gradients", max_rel_grad_diff=rel[worst],
               worst_parameter=worst, max_abs_diff=abs_diff, max_abs_ref=None, tolerance=tol,
               parameters=len(rel), passed=bool(ok))
    if not ok:
        raise BenchCheckError(
            f"gradient check failed before timing: {name} differs from {ref_name} by a relative gradient "
            f"difference of {rel[worst]:.3g} ({worst}) > tolerance {tol:.3g} ({s.dtype}); nothing was timed.",
            rec)
    return rec


@contextlib.contextmanager
def _gradients_on(model):
    """The encoder's parameters require grad inside the block (the benchmark's model is loaded frozen)."""
    before = {n: p.requires_grad for n, p in model.named_parameters()}
    model.requires_grad_(True)
    try:
        yield
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(before[n])
            p.grad = None


def _crashed(r: _Runner, name: str, n_tok: int, e: Exception) -> None:
    first = (str(e).strip().splitlines() or [""])[0][:300]
    r.errors.append(dict(config=name, sweep=SWEEP, tokens=n_tok, error=f"{type(e).__name__}: {first}"))
    if r.s.device.type == "cuda":
        torch.cuda.empty_cache()


def _check_and_time(r: _Runner, inp: Inputs, step: TrainStep, ref, ref_name: str) -> None:
    """The first step (checked against ``ref``, the reference gradients; None: ``step`` IS the reference),
    then warm-ups and the timed steps; a failed check or a crash is recorded, never fatal."""
    name = inp.config.name
    try:
        r._label(SWEEP, {}, f"{name} check")
        _, sec = r._first_run(step)
        if ref is None:
            chk = dict(config=name, sweep=SWEEP, reference="(the reference)", check="gradients",
                       max_rel_grad_diff=0.0, max_abs_diff=0.0, max_abs_ref=None, tolerance=None, passed=True)
        else:
            chk = grad_check(name, step.grads(), ref, ref_name, r.s)
        chk["seconds"] = sec
        r.checks.append(chk)
        r._label(SWEEP, {}, name)
        st = r._timed(inp, chk, fn=step, grad=True)
        rec = r.record(inp, SWEEP, {}, chk, st, flops_factor=FLOPS_FACTOR)
        rec["train"] = dict(loss=float(step.loss), optimizer="SGD", lr=LR, reduction="per_image", pool="cls",
                            num_classes=NUM_CLASSES, parameters=len(step.params), flops_factor=FLOPS_FACTOR)
    except BenchCheckError as e:
        r.check_failed(e, name, SWEEP, {})
    except Exception as e:  # a crash (e.g. out of memory in the backward): recorded, the run goes on
        _crashed(r, name, inp.counts["tokens"], e)
    r.bar.update(1)


def _reference_grads(r: _Runner, head, imgs) -> dict:
    """The loop step's gradients on ``imgs`` (each image alone through the model)."""
    m = r.model
    step = TrainStep(m, head, lambda: m.forward_packed(imgs, attention=REFERENCE_BACKEND), len(imgs))
    step()
    return step.grads()


def _run_tiled(r: _Runner, head, items, pils, config: Config) -> None:
    s, m = r.s, r.model
    inp = prepare_tiled(items, pils, config.method, s.scale, s.device, s.dtype)
    inp = replace(inp, config=config)
    tiles = list(inp.payload)
    try:
        ref = _reference_grads(r, head, tiles)
    except Exception as e:
        _crashed(r, config.name, inp.counts["tokens"], e)
        r.bar.update(1)
        return
    step = TrainStep(m, head, lambda: m.forward_tiles(inp.payload), len(tiles))
    _check_and_time(r, inp, step, ref, f"forward_packed(each tile alone, {REFERENCE_BACKEND!r})")


def _run_packed(r: _Runner, head, items, pils, configs: list[Config]) -> None:
    s, m = r.s, r.model
    budgets = [packed_budget(it, s.scale) for it in items]
    imgs, pk = prepare_packed(items, pils, budgets, s.scale, s.device, s.dtype)
    reference = Config.packed(REFERENCE_BACKEND, train=True)
    ref = None
    for config in sorted(configs, key=lambda c: c != reference):  # the reference first
        inp = Inputs(config, len(items), pk["lengths"], pk["counts"], imgs, info=dict(sizes=pk["sizes"]))
        step = TrainStep(m, head, lambda b=config.backend: m.forward_packed(imgs, attention=b), len(imgs))
        if config != reference and ref is None:
            try:
                ref = _reference_grads(r, head, imgs)
            except Exception as e:
                _crashed(r, config.name, pk["counts"]["tokens"], e)
                r.bar.update(1)
                continue
        _check_and_time(r, inp, step, None if config == reference else ref, reference.name)
        if config == reference and r.checks and r.checks[-1]["config"] == reference.name:
            ref = step.grads()  # the reference step just ran: its gradients are the reference


def run_train(r: _Runner, items, pils) -> list[dict]:
    """Check, then time, every training-step configuration on the main set (records in ``r``); returns the
    configurations that cannot train here (for ``unavailable``)."""
    s = r.s
    configs, unavailable = train_configs(s)
    if r.out_of_time(SWEEP, {}, len(configs)):
        return unavailable
    head = make_head(NUM_CLASSES, seed=s.seed).to(s.device, s.dtype)
    with _gradients_on(r.model):
        for config in configs:
            if config.kind == "tiled":
                _run_tiled(r, head, items, pils, config)
        packed = [c for c in configs if c.kind == "packed"]
        if packed:
            _run_packed(r, head, items, pils, packed)
    return unavailable
