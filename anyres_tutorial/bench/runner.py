"""The run loop of the benchmark: every configuration checked against its reference, then timed, on every
input
set; :class:`TrainRunner` times training steps the same way; :func:`run` is ``python -m
anyres_tutorial.bench``.

Taught in `timing`. Checks before timing: ``packed-*`` against the reference backend (each image alone); the
reference itself (main set) against ``forward_tiles`` of each image alone; ``tiled*`` against each tile alone;
training steps by their parameter gradients. A failed check aborts the run (``--on-check-failure skip``:
recorded, not timed). Every set also records which backend ``"auto"`` would pick for it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from .. import tiling, training
from ..encoder import attention
from . import timing
from .cli import Settings, parse_settings
from .timing import BenchCheckError, check, grad_check
from .workload import (
    Config,
    Inputs,
    Job,
    configs,
    executed_flops,
    make_workload,
    memory,
    packed_budget,
    packed_inputs,
    prepare_packed,
    prepare_tiled,
)

REFERENCE = Config.packed(attention.REFERENCE)


class Runner:
    """Checks and times configurations on input sets and keeps every record of the run."""

    def __init__(self, s: Settings, model, meta: dict | None = None, bar=None):
        from tqdm.auto import tqdm

        self.s, self.model, self.meta = s, model, meta or {}
        self.bar = bar if bar is not None else tqdm(disable=True)
        self.results, self.checks, self.skipped, self.errors, self.auto = [], [], [], [], []
        self.data_parallel: dict | None = None
        self.pipeline: list[dict] = []
        self.matmul = dict(flops_per_s=float("nan"))
        self.t0 = time.perf_counter()

    # -- bookkeeping -------------------------------------------------------------------------------------

    def out_of_time(self, sweep: str, point: dict, n_jobs: int) -> bool:
        """True (and the set recorded in ``skipped``) once ``--time-budget-s`` has passed."""
        budget, spent = self.s.time_budget_s, time.perf_counter() - self.t0
        if budget is None or spent <= budget:
            return False
        self.skipped.append(dict(config="*", sweep=sweep, **point, tokens=None,
                                 reason=f"--time-budget-s {budget:g} spent ({spent:.0f} s): not started"))
        self.bar.update(n_jobs)
        return True

    def check_failed(self, e: BenchCheckError, config: str, sweep: str, point: dict) -> None:
        """``--on-check-failure abort`` (default): raise; ``skip``: record the check and the message."""
        if self.s.on_check_failure != "skip":
            raise e
        if e.record is not None:
            self.checks.append(e.record)
        self.errors.append(dict(config=config, sweep=sweep, **point, tokens=None, error=str(e)))

    def crashed(self, config: Config, sweep: str, point: dict, n_tok, e: Exception) -> None:
        """A crash (not a wrong number): fatal in the main set, recorded in ``errors`` elsewhere."""
        msg = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"
        if sweep == "main":
            raise BenchCheckError(f"{config} crashed on the main set: {msg}") from e
        self.errors.append(dict(config=config.name, sweep=sweep, **point, tokens=n_tok, error=msg))
        if self.s.device.type == "cuda":
            torch.cuda.empty_cache()

    def label(self, sweep: str, point: dict, what) -> None:
        self.bar.set_postfix_str(f"{sweep} {point.get('point', '')} {what}")

    def first_run(self, fn):
        """One run of ``fn`` (the check run, also the first warm-up: it compiles) -> (output, seconds)."""
        t0 = time.perf_counter()
        out = fn()
        timing.sync(self.s.device)
        return out, time.perf_counter() - t0

    def forward(self, inp: Inputs):
        m, config = self.model, inp.config
        if config.kind == "tiled":
            return lambda: m.forward_tiles(inp.payload)
        return lambda: m.forward_packed(inp.payload, attention=config.backend)

    def record(self, inp: Inputs, sweep: str, point: dict, check: dict, st: dict, flops_factor: int = 1,
               peak_bytes: int | None = None) -> dict:
        """Record the timing stats ``st`` of ``inp``'s configuration; ``flops_factor`` multiplies the
        forward's FLOPs (3 for a training step)."""
        config, sec = inp.config, st["median_ms"] / 1e3
        flops = flops_factor * int(self.model.flops(list(inp.lengths)))  # useful work
        executed = flops_factor * executed_flops(inp) if config.kind == "packed" else flops
        mm = self.matmul["flops_per_s"]
        rec = dict(config=config.name, sweep=sweep, **point, num_images=inp.images,
                   sequences=len(inp.lengths), max_sequence=max(inp.lengths), **inp.counts, **st,
                   images_per_s=inp.images / sec, tokens_per_s=inp.counts["tokens"] / sec,
                   flops=flops, executed_flops=executed, achieved_flops=flops / sec, matmul_flops=mm,
                   efficiency=flops / sec / mm, device=self.meta.get("device_name"),
                   device_type=self.s.device.type,
                   dtype=self.meta.get("dtype"), torch_version=torch.__version__, threads=self.s.threads,
                   check_passed=check["passed"], check_max_abs_diff=check["max_abs_diff"],
                   info={k: v for k, v in inp.info.items() if k != "grids"}, **memory(inp))
        if config.rows:  # the row padding of the packed batch, at the top level for readers
            rec.update(rows=inp.info["rows"], max_len=inp.info["max_len"], row_slots=inp.info["slots"],
                       row_padding_slots=inp.info["padding_slots"],
                       row_padding_fraction=inp.info["padding_fraction"])
        rec["peak_memory_bytes"] = None if peak_bytes is None else int(peak_bytes)
        self.results.append(rec)
        return rec

    def skip_reason(self, inp: Inputs) -> str | None:
        """Why a packed configuration is not run: its mask above ``--max-mask-gib``, or a kernel that attends
        all pairs of more than ``--dense-max-tokens`` slots (one sequence, or one row); None when it runs."""
        backend = attention.get(inp.config.backend)
        mask, limit = memory(inp)["mask_bytes"], self.s.max_mask_bytes
        n_tok = inp.row_len or inp.counts["tokens"]
        what = f"rows of {n_tok} slots" if inp.config.rows else f"{n_tok} tokens"
        if limit is not None and mask > limit:
            return (f"the {inp.config.backend} mask alone would be {mask / 2**30:.3g} GiB for {what} > "
                    f"--max-mask-gib {limit / 2**30:.3g}")
        if not backend.attends_all_pairs or n_tok <= self.s.dense_max_tokens:
            return None
        return (f"{what} > --dense-max-tokens {self.s.dense_max_tokens}: the {inp.config.backend} mask "
                f"alone is {mask / 2**30:.2f} GiB and every query meets all {n_tok} keys")

    # -- one input set ------------------------------------------------------------------------------------

    def check_tiled(self, sweep: str, point: dict, items, pils, config: Config) -> Job | None:
        """One tiled batch checked against each tile alone (the reference backend)."""
        s, m = self.s, self.model
        inp = prepare_tiled(items, pils, config.method, s.scale, s.device, s.dtype)
        self.label(sweep, point, f"{config} check")
        out, sec = self.first_run(lambda: m.forward_tiles(inp.payload))  # (B, 1 + N, D)
        ref = m.forward_packed(list(inp.payload), attention=REFERENCE.backend)
        try:
            what = f"forward_packed(each tile alone, {REFERENCE.backend!r})"
            chk = check(config.name, list(out), ref, what, s, sweep)
        except BenchCheckError as e:
            self.check_failed(e, config.name, sweep, point)
            self.bar.update(1)
            return None
        self.checks.append(dict(chk, seconds=sec))
        return Job(inp, chk, self.forward(inp))

    def reference(self, sweep: str, point: dict, inp: Inputs) -> tuple[list, dict]:
        """The reference backend's outputs (in the main set checked against ``forward_tiles`` alone)."""
        m = self.model
        self.label(sweep, point, f"{REFERENCE} check")
        ref, sec = self.first_run(lambda: m.forward_packed(inp.payload, attention=REFERENCE.backend))
        chk = dict(config=REFERENCE.name, sweep=sweep, max_abs_diff=0.0, max_abs_ref=None, tolerance=None,
                   reference="(the reference; checked in main)", passed=True)
        if sweep == "main":  # the reference itself against the batched path, one image at a time
            alone = [m.forward_tiles(x[None])[0] for x in inp.payload]
            try:
                chk = check(REFERENCE.name, ref, alone, "forward_tiles(each image alone)", self.s, sweep)
            except BenchCheckError as e:  # recorded under skip; the packed checks still compare with ref
                self.check_failed(e, REFERENCE.name, sweep, point)
                chk = e.record
        chk["seconds"] = sec
        self.checks.append(chk)
        return ref, chk

    def check_packed(self, sweep: str, point: dict, inp: Inputs, ref, ref_check: dict) -> Job | None:
        """One packed configuration checked against the reference outputs (its first run compiles flex)."""
        config, n_tok = inp.config, inp.counts["tokens"]
        why = self.skip_reason(inp)
        if why is not None:
            self.skipped.append(dict(config=config.name, sweep=sweep, **point, tokens=n_tok, reason=why))
            self.bar.update(1)
            return None
        fn = self.forward(inp)
        try:
            chk = ref_check
            if config != REFERENCE:
                self.label(sweep, point, f"{config} check")
                out, sec = self.first_run(fn)
                chk = dict(check(config.name, out, ref, REFERENCE.name, self.s, sweep), seconds=sec)
                self.checks.append(chk)
            return Job(inp, chk, fn)
        except BenchCheckError as e:
            self.check_failed(e, config.name, sweep, point)
        except Exception as e:  # noqa: BLE001 - a crash is recorded (or fatal in the main set)
            self.crashed(config, sweep, point, n_tok, e)
        self.bar.update(1)
        return None

    def time_jobs(self, sweep: str, point: dict, jobs: list[Job], flops_factor: int = 1) -> list[dict]:
        """Warm up every checked job, time them in interleaved rounds and record each; a job that crashes
        while timed is recorded like a crash at its check."""
        s, failed = self.s, {}

        def guarded(name, fn):
            def go():
                if name in failed:
                    return None
                try:
                    return fn()
                except Exception as e:  # noqa: BLE001 - recorded below
                    failed[name] = e
            return go

        names = [j.inp.config.name for j in jobs]
        warm = {n: s.warmup if j.check.get("seconds", 0) < timing.LONG_RUN_S else 0
                for n, j in zip(names, jobs)}
        self.label(sweep, point, f"{len(jobs)} configurations, interleaved")
        peaks: dict = {}
        times = timing.interleaved({n: guarded(n, j.fn) for n, j in zip(names, jobs)}, s, warm, peaks=peaks)
        recs = []
        for name, job in zip(names, jobs):
            if name in failed:
                self.crashed(job.inp.config, sweep, point, job.inp.counts["tokens"], failed[name])
            else:
                recs.append(self.record(job.inp, sweep, point, job.check, timing.stats(times[name]),
                                        flops_factor, peaks[name].get("bytes")))
            self.bar.update(1)
        return recs

    def note_auto(self, sweep: str, point: dict, inputs: list[Inputs]) -> None:
        """Which backend ``"auto"`` picks for each packed input of the set (one sequence, rows) with the cost
        model this checkout holds; the results set it beside the fastest measured backend."""
        s = self.s
        for inp in {i.config.max_len: i for i in inputs if isinstance(i, Inputs)}.values():
            try:
                choice = attention.resolve("auto", s.device, s.dtype, rows=inp.rows, row_len=inp.row_len)
            except ValueError as e:
                choice = f"none ({e})"
            self.auto.append(dict(sweep=sweep, **point, max_len=inp.config.max_len, auto=choice))

    def run_set(self, sweep: str, point: dict, items, pils, configs: list[Config], budgets=None,
                packed_scale=None, upscale=False) -> None:
        """Check every configuration on one input set (``point`` labels the sweep position), then time the
        ones that passed in interleaved rounds."""
        s = self.s
        packed = [c for c in configs if c.kind == "packed"]
        jobs: list[Job] = []
        with torch.inference_mode():
            for config in configs:
                if config.kind == "tiled":
                    jobs += [j for j in [self.check_tiled(sweep, point, items, pils, config)] if j]
            if packed:
                budgets = budgets or [packed_budget(it, s.scale) for it in items]
                scale = s.scale if packed_scale is None else packed_scale
                one = prepare_packed(REFERENCE, items, pils, budgets, scale, s.device, s.dtype, upscale)
                ref, ref_check = self.reference(sweep, point, one)
                inputs = packed_inputs(packed, one)
                for config, inp in zip(packed, inputs):
                    if isinstance(inp, ValueError):
                        self.skipped.append(dict(config=config.name, sweep=sweep, **point,
                                                 tokens=one.counts["tokens"], reason=str(inp)))
                        self.bar.update(1)
                    else:
                        jobs += [j for j in [self.check_packed(sweep, point, inp, ref, ref_check)] if j]
                self.note_auto(sweep, point, inputs)
                del ref
            self.time_jobs(sweep, point, jobs)

    # -- the whole run ----------------------------------------------------------------------------------

    def sweeps(self, main_items, pils, configs: list[Config]) -> None:
        """The num_images, resolution (16 images at most B tokens each) and small_images sweeps."""
        s = self.s
        configs = [c for c in configs if not c.rows]  # rows: the main set only
        packed = [c for c in configs if c.kind == "packed"]
        for n in s.sweep_images:
            if n != s.num_images and not self.out_of_time("num_images", {"point": n}, len(configs)):
                items = make_workload(n, s.seed)
                self.run_set("num_images", {"point": n}, items, [it.load() for it in items], configs)
        res = main_items[:16] if len(main_items) >= 16 else make_workload(16, s.seed)
        res_pils = pils[:16] if len(main_items) >= 16 else [it.load() for it in res]
        for b in s.budgets:
            point = {"point": b, "budget": b}
            if not self.out_of_time("resolution", point, len(packed)):
                self.run_set("resolution", point, res, res_pils, packed, budgets=[b] * len(res),
                             packed_scale=1.0, upscale=True)
        for n in s.sweep_images:
            point = {"point": n, "budget": s.small_budget}
            if not self.out_of_time("small_images", point, len(packed)):
                items = make_workload(n, s.seed)
                self.run_set("small_images", point, items, [it.load() for it in items], packed,
                             budgets=[s.small_budget] * n, packed_scale=1.0)

    def job_count(self, configs: list[Config]) -> int:
        """Progress-bar steps of the whole run (an estimate: skipped sets advance it too)."""
        from .pipeline import pipelines

        s = self.s
        single = [c for c in configs if not c.rows]
        packed = [c for c in single if c.kind == "packed"]
        jobs = len(configs) + len(tiling.METHODS) + 2 + (len(pipelines(s)) if s.pipeline_images else 0)
        if s.sweeps:
            jobs += len(single) * len([n for n in s.sweep_images if n != s.num_images])
            jobs += len(packed) * (len(s.budgets) + len(s.sweep_images))
        return jobs

    def run(self) -> dict:
        """The whole run: the yardstick, the main set, the pipeline, the sweeps, planning, the yardstick
        again; the JSON's data (:func:`~.results.assemble`)."""
        from .pipeline import run_pipelines
        from .results import assemble

        s = self.s
        forward, unavailable = configs(s)
        self.bar.reset(total=self.job_count(forward))
        self.label("matmul", {}, "")
        self.matmul = timing.matmul(s)
        main_items = make_workload(s.num_images, s.seed)
        pils = [it.load() for it in main_items]
        self.run_set("main", {}, main_items, pils, forward)
        unavailable += self.extra_main(main_items, pils)
        if s.pipeline_images:  # the whole path file -> encoder outputs, per tiling method and for packing
            self.pipeline = run_pipelines(self, main_items[: s.pipeline_images])
        if s.sweeps:
            self.sweeps(main_items, pils, forward)
        planning = timing.planning(s, self.bar)
        end = timing.matmul(s)
        self.meta.update(wall_s=round(time.perf_counter() - self.t0, 1), load_end=timing.load_average(),
                         out=str(s.out))
        return assemble(self, main_items, unavailable, planning, end)

    def extra_main(self, items, pils) -> list[dict]:
        """More work on the main set (a subclass's training steps); returns unavailable configurations."""
        return []


# ----------------------------------------------------------------------------------------------------------
# training steps


NUM_CLASSES = 10  # classes of the head; image i's target is i % NUM_CLASSES
LR = 0.0  # the SGD step runs but leaves the weights as they are: every repetition is the same step
FLOPS_FACTOR = 3  # a training step's FLOPs ~ forward + backward (2x the forward)


class TrainStep:
    """One training step: ``forward()`` (one output per encoder image), a linear head on the CLS tokens,
    cross-entropy against ``i % NUM_CLASSES``, the per-image loss, backward and an SGD step with lr 0 (the
    update runs, the weights stay: every repetition is the same step). :meth:`grads` reads the latest
    step's."""

    def __init__(self, model, head, forward, num_images: int):
        self.forward, self.head = forward, head
        self.params = training.trainable(model, head)
        self.targets = torch.arange(num_images, device=model.device) % NUM_CLASSES  # (n,)
        self.opt = torch.optim.SGD(list(self.params.values()), lr=LR)
        self.loss: float | None = None

    def __call__(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        outs = self.forward()  # n x (1 + N_i, D), or (n, 1 + N, D) for tiles
        logits = self.head(training.pool(outs)).float()  # (n, NUM_CLASSES)
        losses = F.cross_entropy(logits, self.targets, reduction="none")  # (n,)
        loss = training.reduce_losses(losses, [o.shape[0] for o in outs], "per_image")
        loss.backward()
        self.opt.step()
        self.loss = float(loss.detach())

    def grads(self) -> dict[str, torch.Tensor]:
        """The latest step's gradient of every trained parameter (float32 copies; zeros where unused)."""
        return {n: (torch.zeros_like(p) if p.grad is None else p.grad).detach().float().clone()
                for n, p in self.params.items()}


class TrainRunner(Runner):
    """The runner with ``--train``: after the main set's forwards, one training step per configuration
    (``train-tiled``, ``train-packed-<backend>`` for every backend that can train here), each checked by its
    gradients against the reference step, then timed like a forward (3x its FLOPs)."""

    def extra_main(self, items, pils) -> list[dict]:
        s, m = self.s, self.model
        steps, unavailable = configs(s, train=True)
        if self.out_of_time("train", {}, len(steps)):
            return unavailable
        head = training.make_head(NUM_CLASSES, seed=s.seed).to(s.device, s.dtype)
        with training.restored(m):  # the encoder trains inside, and is left exactly as it was
            m.requires_grad_(True)
            budgets = [packed_budget(it, s.scale) for it in items]
            one = prepare_packed(REFERENCE, items, pils, budgets, s.scale, s.device, s.dtype)
            packed_ref = None
            for c in steps:
                if c.kind == "tiled":
                    inp = replace(prepare_tiled(items, pils, c.method, s.scale, s.device, s.dtype), config=c)
                    alone, ref_name = list(inp.payload), f"each tile alone ({REFERENCE.backend})"
                    fn = lambda x=inp.payload: m.forward_tiles(x)  # noqa: E731
                else:
                    inp, alone, ref_name = replace(one, config=c), one.payload, REFERENCE.name
                    fn = lambda b=c.backend: m.forward_packed(one.payload, attention=b)  # noqa: E731
                try:
                    ref = packed_ref if c.kind == "packed" and packed_ref is not None else None
                    if ref is None:  # the reference step: each image (tile) alone
                        alone_fn = lambda a=alone: m.forward_packed(a, attention=REFERENCE.backend)  # noqa: E731
                        ref_step = TrainStep(m, head, alone_fn, len(alone))
                        ref_step()
                        ref = ref_step.grads()
                        packed_ref = ref if c.kind == "packed" else packed_ref
                except Exception as e:  # noqa: BLE001 - e.g. out of memory in the backward: recorded
                    self.crashed(c, "train", {}, inp.counts["tokens"], e)
                    self.bar.update(1)
                    continue
                self.train_one(inp, TrainStep(m, head, fn, len(alone)), ref, ref_name)
        self.data_parallel_point(unavailable)
        return unavailable

    def data_parallel_point(self, unavailable: list) -> None:
        """``--dp-ranks`` ranks training on one stream of mixed images, naive vs balanced assignment
        (``distributed.bench_point``): per-rank step times and straggler ratios, in the JSON's
        ``data_parallel``; why it did not run in ``unavailable``."""
        from .. import distributed

        s = self.s
        if not s.dp_ranks:
            unavailable.append(dict(config="data_parallel", device=s.device.type,
                                    reason="--dp-ranks 0 (a CUDA machine needs >= 2 GPUs: one rank per GPU)"))
            return
        small = s.quick or s.dry_run  # a smoke test of the path, not a measurement
        self.label("train", {}, f"data-parallel, {s.dp_ranks} ranks")
        try:
            self.data_parallel = distributed.bench_point(
                s.dp_ranks, attention="auto", steps=1 if small else 3, images=4 if small else 8,
                budget=(16, 64) if small else (16, 256), repeats=1 if small else 2)
        except Exception as e:  # noqa: BLE001 - recorded: the forward and training records still count
            first = (str(e).strip().splitlines() or [""])[0][:300]
            self.errors.append(dict(config="data_parallel", sweep="train", tokens=None,
                                    error=f"{type(e).__name__}: {first}"))

    def train_one(self, inp: Inputs, step: TrainStep, ref: dict, ref_name: str) -> None:
        """The first step checked against ``ref`` (the reference gradients), then warm-ups and timed steps."""
        name = inp.config.name
        try:
            self.label("train", {}, f"{name} check")
            _, sec = self.first_run(step)
            chk = dict(grad_check(name, step.grads(), ref, ref_name, self.s), seconds=sec)
            self.checks.append(chk)
            (rec,) = self.time_jobs("train", {}, [Job(inp, chk, step)], FLOPS_FACTOR) or [None]
            if rec is not None:
                rec["train"] = dict(loss=step.loss, optimizer="SGD", lr=LR, reduction="per_image", pool="cls",
                                    num_classes=NUM_CLASSES, parameters=len(step.params),
                                    flops_factor=FLOPS_FACTOR)
                rec["order"] = "consecutive"
        except BenchCheckError as e:
            self.check_failed(e, name, "train", {})
            self.bar.update(1)
        except Exception as e:  # noqa: BLE001 - a crash (e.g. out of memory in the backward): recorded
            self.crashed(inp.config, "train", {}, inp.counts["tokens"], e)
            self.bar.update(1)


def run(argv: list[str] | None = None) -> dict:
    """Run the benchmark with command-line style arguments; write the JSON (and plots); return the data.

    Raises :class:`BenchCheckError` when a configuration disagrees with its reference. Taught in `timing`.
    """
    from tqdm.auto import tqdm

    from ..encoder import vit
    from .results import check_writable, refuse_too_large, save

    s = parse_settings(argv)
    check_writable(s.out)
    refuse_too_large(s)
    torch.manual_seed(s.seed)
    if s.device.type == "cpu":
        torch.set_num_threads(s.threads)
    meta = timing.machine_meta(s)
    model = vit.load_dinov2(device=s.device, dtype=s.dtype, weights_path=s.weights)
    meta["weights"] = timing.weights_meta(model)
    bar = tqdm(desc="bench", disable=not s.progress, file=sys.stderr)
    r = (TrainRunner if s.train else Runner)(s, model, meta, bar)
    data = r.run()
    bar.close()
    return save(data, s)
