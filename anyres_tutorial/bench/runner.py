"""The run loop: check every configuration against its reference, then time it; assemble the JSON.

Checks before timing: every configuration's output is compared with a reference on the same inputs -
``packed-*`` with the reference backend (``packed-loop``: each image alone); the reference itself (main set)
with ``forward_tiles`` of each image alone; ``tiled*`` with ``forward_packed(tiles, "loop")`` (each tile
alone). The max abs diff and the tolerance (fp32: 1e-4 + 1e-4 max|ref|; bf16: 5e-2 + 2e-2 max|ref|) are
recorded; a failed check aborts the run. Taught in `timing`.
"""

from __future__ import annotations

import json
import math
import sys
import time

import torch

from .. import attention, tiling
from ..vit import DIM, MLP_HIDDEN
from . import timing
from .cli import Settings, parse_settings
from .config import REFERENCE_BACKEND, Config
from .summary import targets
from .workload import Inputs, data_items, make_workload, packed_budget, prepare_packed, prepare_tiled

TOLERANCE = {"float32": (1e-4, 1e-4), "bfloat16": (5e-2, 2e-2)}  # (atol, rtol * max|ref|)
REFERENCE = Config.packed(REFERENCE_BACKEND)


class BenchCheckError(RuntimeError):
    """A configuration's output differs from its reference beyond the tolerance (raised before timing);
    ``record`` is the failed check's record when there is one."""

    def __init__(self, message: str, record: dict | None = None):
        super().__init__(message)
        self.record = record


def _max_diff(outs, refs) -> tuple[float, float]:
    if len(outs) != len(refs):
        raise BenchCheckError(f"{len(outs)} outputs for {len(refs)} reference outputs")
    diff = mag = 0.0
    for o, r in zip(outs, refs):
        if tuple(o.shape) != tuple(r.shape):
            raise BenchCheckError(f"output shape {tuple(o.shape)} differs from reference {tuple(r.shape)}")
        diff = max(diff, (o.float() - r.float()).abs().max().item())
        mag = max(mag, r.float().abs().max().item())
    return diff, mag


def check(name: str, outs, refs, ref_name: str, s: Settings, where: str) -> dict:
    """Compare the outputs of configuration ``name`` with its reference's; the check record, or
    :class:`BenchCheckError` beyond the tolerance of the run's dtype."""
    atol, rtol = TOLERANCE.get(timing.dtype_name(s.dtype), TOLERANCE["float32"])
    diff, mag = _max_diff(outs, refs)
    tol = atol + rtol * mag
    ok = bool(diff <= tol) and math.isfinite(diff)
    rec = dict(config=name, sweep=where, reference=ref_name, max_abs_diff=diff, max_abs_ref=mag,
               tolerance=tol, passed=ok)
    if not ok:
        raise BenchCheckError(
            f"correctness check failed before timing: {name} ({where}) differs from {ref_name} by max abs "
            f"{diff:.3g} > tolerance {tol:.3g} ({s.dtype}); nothing was timed. Fix the backend first.", rec)
    return rec


def dense_executed_flops(lengths) -> int:
    """FLOPs a dense-mask kernel really computes for ONE packed sequence of images with ``lengths`` tokens:
    ``vit.count_flops(lengths)`` plus the masked-out attention pairs (every query still meets all N keys).
    Taught in `timing`."""
    return attention.executed_flops("dense_mask", lengths)


def cpu_memory(config: Config, lengths: list[int]) -> dict:
    """Estimated bytes of the attention mask (the backend's own ``memory``) and of one block's largest
    activations (x, qkv, MLP hidden) at fp32 on CPU. A backend without ``prepare`` holds one image at a time;
    one that pads q, k, v (``padded_tokens`` slots) also holds them."""
    per_token = 4 * (4 * DIM + MLP_HIDDEN)
    n_tok = sum(lengths)
    if config.kind == "tiled":
        return dict(mask_bytes=0, activation_bytes=per_token * n_tok)
    backend = attention.get(config.backend)
    mem = backend.memory(list(lengths))
    if backend.prepare is None:  # each image alone through the model
        act = per_token * max(lengths)
    else:
        act = per_token * n_tok + 4 * 3 * DIM * int(mem["padded_tokens"])
    return dict(mask_bytes=int(mem["mask_bytes"]), activation_bytes=act)


class _Runner:
    """Checks and times configurations on input sets and keeps every record of the run."""

    def __init__(self, s: Settings, model, meta: dict, bar):
        self.s, self.model, self.meta, self.bar = s, model, meta, bar
        self.results, self.checks, self.skipped, self.errors = [], [], [], []
        self.matmul = None
        self.t0 = time.perf_counter()

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
        """``--on-check-failure abort`` (the default): raise ``e``; ``skip``: record it (the check in
        ``checks``, the message in ``errors``) and go on without timing that configuration."""
        if self.s.on_check_failure != "skip":
            raise e
        if e.record is not None:
            self.checks.append(e.record)
        self.errors.append(dict(config=config, sweep=sweep, **point, tokens=None, error=str(e)))

    def _label(self, sweep: str, point: dict, what) -> None:
        self.bar.set_postfix_str(f"{sweep} {point.get('point', '')} {what}")

    def _first_run(self, fn):
        """One run of ``fn`` (the check run, also the first warm-up) -> (output, seconds)."""
        t0 = time.perf_counter()
        out = fn()
        timing.sync(self.s.device)
        return out, time.perf_counter() - t0

    def forward(self, inp: Inputs):
        m, config = self.model, inp.config
        if config.kind == "tiled":
            return lambda: m.forward_tiles(inp.payload)
        return lambda: m.forward_packed(inp.payload, attention=config.backend)

    def _timed(self, inp: Inputs, check: dict, fn=None, grad: bool = False) -> dict:
        """Warm-ups, then the timed runs of ``fn`` (default: ``inp``'s forward) -> the timing stats; under
        ``torch.inference_mode`` unless ``grad`` (a training step)."""
        s = self.s
        fn = self.forward(inp) if fn is None else fn
        with torch.inference_mode(not grad):
            for _ in range(s.warmup if check.get("seconds", 0) < timing.LONG_RUN_S else 0):
                fn()
            timing.sync(s.device)
            if s.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(s.device)
            return timing.stats(timing.time_runs(fn, s))

    def measure(self, inp: Inputs, sweep: str, point: dict, check: dict) -> dict:
        """Warm up, time and record ``inp``'s configuration (its check already passed)."""
        return self.record(inp, sweep, point, check, self._timed(inp, check))

    def record(self, inp: Inputs, sweep: str, point: dict, check: dict, st: dict,
               flops_factor: int = 1) -> dict:
        """Record the timing stats ``st`` of ``inp``'s configuration; ``flops_factor`` multiplies the
        forward's FLOPs (3 for a training step: forward + backward)."""
        s, config = self.s, inp.config
        sec = st["median_ms"] / 1e3
        flops = flops_factor * int(self.model.flops(list(inp.lengths)))  # useful work = vit.count_flops
        executed = (flops_factor * attention.executed_flops(config.backend, inp.lengths)
                    if config.kind == "packed" else flops)
        mm = self.matmul["flops_per_s"]
        rec = dict(config=config.name, sweep=sweep, **point, num_images=inp.images,
                   sequences=len(inp.lengths), max_sequence=max(inp.lengths), **inp.counts, **st,
                   images_per_s=inp.images / sec, tokens_per_s=inp.counts["tokens"] / sec,
                   flops=flops, executed_flops=executed, achieved_flops=flops / sec, matmul_flops=mm,
                   efficiency=flops / sec / mm, device=self.meta["device_name"], device_type=s.device.type,
                   dtype=self.meta["dtype"], torch_version=torch.__version__, threads=s.threads,
                   check_passed=check["passed"], check_max_abs_diff=check["max_abs_diff"],
                   info={k: v for k, v in inp.info.items() if k != "grids"})
        if s.device.type == "cuda":
            rec["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(s.device))
            rec["mask_bytes"] = cpu_memory(config, inp.lengths)["mask_bytes"]  # the registry's estimate
        else:
            rec["peak_memory_bytes"] = None
            rec.update(cpu_memory(config, inp.lengths))
        self.results.append(rec)
        return rec

    def run_tiled(self, sweep: str, point: dict, items, pils, config: Config) -> None:
        """One tiled batch: checked against each tile alone through ``forward_packed(..., "loop")``."""
        s, m = self.s, self.model
        inp = prepare_tiled(items, pils, config.method, s.scale, s.device, s.dtype)
        self._label(sweep, point, f"{config} check")
        out, sec = self._first_run(lambda: m.forward_tiles(inp.payload))  # (B, 1 + N, D)
        ref = m.forward_packed(list(inp.payload), attention=REFERENCE_BACKEND)
        what = f"forward_packed(each tile alone, {REFERENCE_BACKEND!r})"
        try:
            chk = check(config.name, list(out), ref, what, s, sweep)
        except BenchCheckError as e:
            self.check_failed(e, config.name, sweep, point)
            self.bar.update(1)
            return
        chk["seconds"] = sec
        self.checks.append(chk)
        del out, ref
        self._label(sweep, point, config)
        self.measure(inp, sweep, point, chk)
        self.bar.update(1)

    def _reference(self, sweep: str, point: dict, imgs) -> tuple[list, dict]:
        """The reference backend's outputs (checked against ``forward_tiles`` alone in the main set)."""
        s, m = self.s, self.model
        self._label(sweep, point, f"{REFERENCE} check")
        ref, sec = self._first_run(lambda: m.forward_packed(imgs, attention=REFERENCE_BACKEND))
        if sweep == "main":  # the reference itself against the batched path, one image at a time
            alone = [m.forward_tiles(x[None])[0] for x in imgs]
            try:
                chk = check(REFERENCE.name, ref, alone, "forward_tiles(each image alone)", s, sweep)
            except BenchCheckError as e:  # recorded under skip; the packed checks still compare with ref
                self.check_failed(e, REFERENCE.name, sweep, point)
                chk = e.record
            del alone
        else:
            chk = dict(config=REFERENCE.name, sweep=sweep, max_abs_diff=0.0, max_abs_ref=None,
                       reference="(the reference; checked in main)", tolerance=None, passed=True)
        chk["seconds"] = sec
        self.checks.append(chk)
        return ref, chk

    def _skip_reason(self, config: Config, lengths: list[int]) -> str | None:
        """Why a backend is not run on these images: above ``--dense-max-tokens`` for one that attends all
        pairs, or a mask above ``--max-mask-gib``; None when it runs."""
        backend = attention.get(config.backend)
        n_tok = sum(lengths)
        mask = backend.memory(list(lengths))["mask_bytes"]
        limit = self.s.max_mask_bytes
        if limit is not None and mask > limit:
            return (f"the {config.backend} mask alone would be {mask / 2**30:.3g} GiB for {n_tok} tokens > "
                    f"--max-mask-gib {limit / 2**30:.3g}")
        if not backend.attends_all_pairs or n_tok <= self.s.dense_max_tokens:
            return None
        return (f"{n_tok} tokens > --dense-max-tokens {self.s.dense_max_tokens}: the {config.backend} mask "
                f"alone is {mask / 2**30:.2f} GiB and every query meets all N keys")

    def run_packed(self, sweep: str, point: dict, config: Config, inp: Inputs, ref, ref_check: dict) -> None:
        """One packed backend: checked against the reference outputs ``ref``, then timed; a crash is fatal in
        the main set and recorded in ``errors`` in the sweeps."""
        n_tok = inp.counts["tokens"]
        why = self._skip_reason(config, inp.lengths)
        if why is not None:
            self.skipped.append(dict(config=config.name, sweep=sweep, **point, tokens=n_tok, reason=why))
            self.bar.update(1)
            return
        try:
            chk = ref_check
            if config != REFERENCE:
                self._label(sweep, point, f"{config} check")
                out, sec = self._first_run(  # the first warm-up (compiles flex)
                    lambda: self.model.forward_packed(inp.payload, attention=config.backend))
                chk = check(config.name, out, ref, REFERENCE.name, self.s, sweep)
                chk["seconds"] = sec
                self.checks.append(chk)
                del out
            self._label(sweep, point, config)
            self.measure(inp, sweep, point, chk)
        except BenchCheckError as e:
            self.check_failed(e, config.name, sweep, point)
        except Exception as e:  # a crash (not a wrong number): fatal in main, recorded in sweeps
            first = (str(e).strip().splitlines() or [""])[0][:300]
            msg = f"{type(e).__name__}: {first}"
            if sweep == "main":
                raise BenchCheckError(f"{config} crashed on the main set before timing: {msg}") from e
            self.errors.append(dict(config=config.name, sweep=sweep, **point, tokens=n_tok, error=msg))
        self.bar.update(1)

    def run_set(self, sweep: str, point: dict, items, pils, configs: list[Config], budgets=None,
                packed_scale=None, upscale=False) -> None:
        """Check, then time, every configuration on one input set (``point`` labels the sweep position)."""
        s = self.s
        packed = [c for c in configs if c.kind == "packed"]
        with torch.inference_mode():
            for config in configs:
                if config.kind == "tiled":
                    self.run_tiled(sweep, point, items, pils, config)
            if not packed:
                return
            if budgets is None:
                budgets = [packed_budget(it, s.scale) for it in items]
            scale = s.scale if packed_scale is None else packed_scale
            imgs, pk = prepare_packed(items, pils, budgets, scale, s.device, s.dtype, upscale)
            ref, ref_check = self._reference(sweep, point, imgs)
            for config in packed:
                inp = Inputs(config, len(items), pk["lengths"], pk["counts"], imgs,
                             info=dict(sizes=pk["sizes"]))
                self.run_packed(sweep, point, config, inp, ref, ref_check)


def available_configs(s: Settings) -> tuple[list[Config], list[dict]]:
    """Packed configurations that run here, and the others with the registry's own reason."""
    configs, unavailable = [], []
    for b in s.backends:
        c = Config.packed(b)
        try:
            attention.resolve(b, s.device, s.dtype)
            configs.append(c)
        except ValueError as e:  # the message names the reason and the available backends
            unavailable.append(dict(config=c.name, device=s.device.type, reason=str(e)))
    return configs, unavailable


def _job_count(s: Settings, n_tiled: int, n_packed: int) -> int:
    n_main = n_tiled + n_packed
    jobs = n_main + len(tiling.METHODS) + 2
    if s.sweeps:
        jobs += (n_main * len([n for n in s.sweep_images if n != s.num_images])
                 + n_packed * (len(s.budgets) + len(s.sweep_images)))
    return jobs


def _load(items) -> list:
    return [it.load() for it in items]


def _sweeps(r: _Runner, main_items, pils, configs: list[Config]) -> None:
    """The num_images, resolution (16 images at exactly B tokens each) and small_images sweeps."""
    s = r.s
    packed = [c for c in configs if c.kind == "packed"]
    for n in s.sweep_images:
        if n != s.num_images and not r.out_of_time("num_images", {"point": n}, len(configs)):
            items = make_workload(n, s.seed)
            r.run_set("num_images", {"point": n}, items, _load(items), configs)
    if len(main_items) >= 16:
        res_items, res_pils = main_items[:16], pils[:16]
    else:
        res_items = make_workload(16, s.seed)
        res_pils = _load(res_items)
    for b in s.budgets:
        if not r.out_of_time("resolution", {"point": b, "budget": b}, len(packed)):
            r.run_set("resolution", {"point": b, "budget": b}, res_items, res_pils, packed,
                      budgets=[b] * len(res_items), packed_scale=1.0, upscale=True)
    for n in s.sweep_images:
        if r.out_of_time("small_images", {"point": n, "budget": s.small_budget}, len(packed)):
            continue
        items = make_workload(n, s.seed)
        r.run_set("small_images", {"point": n, "budget": s.small_budget}, items, _load(items), packed,
                  budgets=[s.small_budget] * n, packed_scale=1.0)


def _final_matmul(r: _Runner, end: dict) -> None:
    """The reference peak is the faster of the two matmul timings (start and end of the run): on a shared
    machine a busy moment must not inflate the efficiencies."""
    peak = max(r.matmul["flops_per_s"], end["flops_per_s"])
    r.matmul = dict(n=end["n"], dtype=end["dtype"], flops_per_s=peak, start=r.matmul, end=end)
    for rec in r.results:
        rec["matmul_flops"] = r.matmul["flops_per_s"]
        rec["efficiency"] = rec["achieved_flops"] / rec["matmul_flops"]
        if rec["sweep"] == "main":  # the main set also belongs to the num_images sweep
            rec["point"] = rec["num_images"]


def _data(r: _Runner, main_items, unavailable: list, planning: list) -> dict:
    return dict(
        schema=1, meta=r.meta,
        workload=dict(
            description="data/ images interleaved with seeded synthetic sizes (aspect log-uniform in "
            "[1/3, 3], 1 in 8 at 1/8 or 8; area log-uniform in [0.03, 2.0] MP); packed budget = tokens of "
            f"the image's {tiling.DEFAULT_METHOD} local tiles at the run's scale",
            data_note=data_items()[1],
            main=[dict(name=it.name, source=it.source, size=list(it.size)) for it in main_items]),
        matmul=r.matmul, results=r.results, checks=r.checks, unavailable=unavailable, skipped=r.skipped,
        errors=r.errors, planning=planning, plots=[])


def run(argv: list[str] | None = None) -> dict:
    """Run the benchmark with command-line style arguments; write the JSON (and plots); return the data.

    Raises :class:`BenchCheckError` when a configuration disagrees with its reference. Taught in `timing`.
    """
    from tqdm.auto import tqdm

    from .. import vit
    from .plots import save_plots
    from .train import run_train, train_configs

    s = parse_settings(argv)
    torch.manual_seed(s.seed)
    if s.device.type == "cpu":
        torch.set_num_threads(s.threads)
    meta = timing.machine_meta(s)
    t0 = time.perf_counter()
    model = vit.load_dinov2(device=s.device, dtype=s.dtype, weights_path=s.weights)
    meta["weights"] = timing.weights_meta(model)
    packed, unavailable = available_configs(s)
    configs = [Config.tiled(m) for m in (tiling.DEFAULT_METHOD, *s.tiling_methods)] + packed
    n_train = len(train_configs(s)[0]) if s.train else 0
    bar = tqdm(total=_job_count(s, len(configs) - len(packed), len(packed)) + n_train, desc="bench",
               disable=not s.progress, file=sys.stderr)
    r = _Runner(s, model, meta, bar)
    bar.set_postfix_str("matmul")
    r.t0 = t0
    r.matmul = timing.matmul(s)
    bar.update(1)
    main_items = make_workload(s.num_images, s.seed)
    pils = _load(main_items)
    r.run_set("main", {}, main_items, pils, configs)
    if s.train:  # the training steps of the main set, before the sweeps and their time budget
        unavailable += run_train(r, main_items, pils)
    if s.sweeps:
        _sweeps(r, main_items, pils, configs)
    planning = timing.planning(s, bar)
    bar.set_postfix_str("matmul again")
    end = timing.matmul(s)
    bar.update(1)
    bar.close()
    _final_matmul(r, end)
    r.meta["wall_s"] = round(time.perf_counter() - t0, 1)
    r.meta["out"] = str(s.out)
    data = _data(r, main_items, unavailable, planning)
    data["targets"] = targets(data)
    s.out.parent.mkdir(parents=True, exist_ok=True)
    if s.plots:
        data["plots"] = save_plots(data, s.out)
    s.out.write_text(json.dumps(data, indent=1, default=str))
    return data
