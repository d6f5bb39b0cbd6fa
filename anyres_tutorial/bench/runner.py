"""The run loop: check every configuration against its reference, then time it; assemble the JSON.

Checks before timing: every configuration's output is compared with a reference on the same inputs -
``packed-*`` with the reference backend (``packed-loop``: each image alone); the reference itself (main set)
with ``forward_tiles`` of each image alone; ``tiled*`` with ``forward_packed(tiles, "loop")`` (each tile
alone). The max abs diff and the tolerance (fp32: 1e-4 + 1e-4 max|ref|; bf16: 5e-2 + 2e-2 max|ref|) are
recorded; a failed check aborts the run. Taught in `timing`.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace

import torch

from .. import tiling
from ..encoder import attention
from . import timing
from .cli import Settings, parse_settings
from .config import REFERENCE_BACKEND, Config
from .cost import Job, cpu_memory, dense_executed_flops, executed_flops  # noqa: F401 (re-exported)
from .pipeline import pipelines, run_pipelines
from .summary import targets
from .verify import TOLERANCE, BenchCheckError, check  # noqa: F401 (TOLERANCE: re-exported)
from .workload import (
    Inputs,
    data_items,
    make_workload,
    packed_budget,
    prepare_packed,
    prepare_rows,
    prepare_tiled,
)

REFERENCE = Config.packed(REFERENCE_BACKEND)


class _Runner:
    """Checks and times configurations on input sets and keeps every record of the run."""

    def __init__(self, s: Settings, model, meta: dict, bar):
        self.s, self.model, self.meta, self.bar = s, model, meta, bar
        self.results, self.checks, self.skipped, self.errors = [], [], [], []
        self.pipeline: list[dict] = []
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
        """Warm-ups, then the consecutive timed runs of ``fn`` (one configuration alone: the training steps)
        -> the timing stats; under ``torch.inference_mode`` unless ``grad`` (a training step)."""
        s = self.s
        fn = self.forward(inp) if fn is None else fn
        with torch.inference_mode(not grad):
            for _ in range(s.warmup if check.get("seconds", 0) < timing.LONG_RUN_S else 0):
                fn()
            timing.sync(s.device)
            if s.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(s.device)
            return timing.stats(timing.time_runs(fn, s), "consecutive")

    def record(self, inp: Inputs, sweep: str, point: dict, check: dict, st: dict,
               flops_factor: int = 1, peak_bytes: int | None = None) -> dict:
        """Record the timing stats ``st`` of ``inp``'s configuration; ``flops_factor`` multiplies the
        forward's FLOPs (3 for a training step: forward + backward); ``peak_bytes`` (CUDA; default: the
        device's peak since the last reset)."""
        s, config = self.s, inp.config
        sec = st["median_ms"] / 1e3
        flops = flops_factor * int(self.model.flops(list(inp.lengths)))  # useful work = vit.count_flops
        executed = flops_factor * executed_flops(inp) if config.kind == "packed" else flops
        mm = self.matmul["flops_per_s"]
        rec = dict(config=config.name, sweep=sweep, **point, num_images=inp.images,
                   sequences=len(inp.lengths), max_sequence=max(inp.lengths), **inp.counts, **st,
                   images_per_s=inp.images / sec, tokens_per_s=inp.counts["tokens"] / sec,
                   flops=flops, executed_flops=executed, achieved_flops=flops / sec, matmul_flops=mm,
                   efficiency=flops / sec / mm, device=self.meta["device_name"], device_type=s.device.type,
                   dtype=self.meta["dtype"], torch_version=torch.__version__, threads=s.threads,
                   check_passed=check["passed"], check_max_abs_diff=check["max_abs_diff"],
                   info={k: v for k, v in inp.info.items() if k != "grids"})
        if config.rows:  # the row padding of the packed batch, at the top level for readers
            rec.update(rows=inp.info["rows"], max_len=inp.info["max_len"], row_slots=inp.info["slots"],
                       row_padding_slots=inp.info["padding_slots"],
                       row_padding_fraction=inp.info["padding_fraction"])
        if s.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(s.device) if peak_bytes is None else peak_bytes
            rec["peak_memory_bytes"] = int(peak)
            rec["mask_bytes"] = cpu_memory(inp)["mask_bytes"]  # the registry's estimate
        else:
            rec["peak_memory_bytes"] = None
            rec.update(cpu_memory(inp))
        self.results.append(rec)
        return rec

    def check_tiled(self, sweep: str, point: dict, items, pils, config: Config) -> Job | None:
        """One tiled batch, checked against each tile alone through ``forward_packed(..., "loop")``; the
        job to time, or None when the check failed (recorded under ``--on-check-failure skip``)."""
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
            return None
        chk["seconds"] = sec
        self.checks.append(chk)
        return Job(inp, chk, self.forward(inp))

    def run_tiled(self, sweep: str, point: dict, items, pils, config: Config) -> None:
        """One tiled batch alone: checked (:meth:`check_tiled`), then timed and recorded."""
        job = self.check_tiled(sweep, point, items, pils, config)
        self.time_jobs(sweep, point, [job] if job else [])

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

    def _skip_reason(self, inp: Inputs) -> str | None:
        """Why a packed configuration is not run on these inputs: above ``--dense-max-tokens`` (the tokens one
        attention call sees: the whole sequence, or one row) for a backend that attends all pairs, or a mask
        above ``--max-mask-gib``; None when it runs."""
        config = inp.config
        backend = attention.get(config.backend)
        mask = cpu_memory(inp)["mask_bytes"]
        limit = self.s.max_mask_bytes
        n_tok = inp.info["max_len"] if config.rows else inp.counts["tokens"]
        what = f"rows of {n_tok} slots" if config.rows else f"{n_tok} tokens"
        if limit is not None and mask > limit:
            return (f"the {config.backend} mask alone would be {mask / 2**30:.3g} GiB for {what} > "
                    f"--max-mask-gib {limit / 2**30:.3g}")
        if not backend.attends_all_pairs or n_tok <= self.s.dense_max_tokens:
            return None
        return (f"{what} > --dense-max-tokens {self.s.dense_max_tokens}: the {config.backend} mask "
                f"alone is {mask / 2**30:.2f} GiB and every query meets all {n_tok} keys")

    def _crash(self, config: Config, sweep: str, point: dict, n_tok: int, e: Exception) -> None:
        """A crash (not a wrong number): fatal in the main set, recorded in ``errors`` in the sweeps."""
        first = (str(e).strip().splitlines() or [""])[0][:300]
        msg = f"{type(e).__name__}: {first}"
        if sweep == "main":
            raise BenchCheckError(f"{config} crashed on the main set: {msg}") from e
        self.errors.append(dict(config=config.name, sweep=sweep, **point, tokens=n_tok, error=msg))

    def check_packed(self, sweep: str, point: dict, inp: Inputs, ref, ref_check: dict) -> Job | None:
        """One packed configuration checked against the reference outputs ``ref`` (its first run, which also
        compiles flex); the job to time, or None (skipped, failed check or crash: recorded)."""
        config, n_tok = inp.config, inp.counts["tokens"]
        why = self._skip_reason(inp)
        if why is not None:
            self.skipped.append(dict(config=config.name, sweep=sweep, **point, tokens=n_tok, reason=why))
            self.bar.update(1)
            return None
        fn = self.forward(inp)
        try:
            chk = ref_check
            if config != REFERENCE:
                self._label(sweep, point, f"{config} check")
                out, sec = self._first_run(fn)  # the first warm-up (compiles flex)
                chk = check(config.name, out, ref, REFERENCE.name, self.s, sweep)
                chk["seconds"] = sec
                self.checks.append(chk)
                del out
            return Job(inp, chk, fn)
        except BenchCheckError as e:
            self.check_failed(e, config.name, sweep, point)
        except Exception as e:
            self._crash(config, sweep, point, n_tok, e)
        self.bar.update(1)
        return None

    def time_jobs(self, sweep: str, point: dict, jobs: list[Job]) -> None:
        """Warm up every checked job, then time them in interleaved rounds (``timing.interleaved``) and
        record each; a job that crashes while timed is recorded like a crash at its check."""
        if not jobs:
            return
        s, failed = self.s, {}

        def guarded(name, fn):
            def run():
                if name in failed:
                    return None
                try:
                    return fn()
                except Exception as e:  # noqa: BLE001 - recorded below
                    failed[name] = e
            return run

        names = [j.inp.config.name for j in jobs]
        fns = {n: guarded(n, j.fn) for n, j in zip(names, jobs)}
        long = timing.LONG_RUN_S
        warm = {n: s.warmup if j.check.get("seconds", 0) < long else 0 for n, j in zip(names, jobs)}
        self._label(sweep, point, f"{len(jobs)} configurations, interleaved")
        peaks: dict = {}
        times = timing.interleaved(fns, s, warm, peaks=peaks)
        for name, job in zip(names, jobs):
            if name in failed:
                self._crash(job.inp.config, sweep, point, job.inp.counts["tokens"], failed[name])
            else:
                self.record(job.inp, sweep, point, job.check, timing.stats(times[name]),
                            peak_bytes=peaks[name].get("bytes"))
            self.bar.update(1)

    def packed_inputs(self, configs: list[Config], items, imgs, pk: dict) -> list[Inputs]:
        """The inputs of every packed configuration: the images as one list (one sequence) or packed into
        rows (:func:`~.workload.prepare_rows`, shared by the configurations of one ``max_len``); a row config
        that cannot hold the longest image is recorded in ``skipped`` by the caller (None here)."""
        rows: dict[int, Inputs] = {}
        out = []
        for config in configs:
            if not config.rows:
                out.append(Inputs(config, len(items), pk["lengths"], pk["counts"], imgs,
                                  info=dict(sizes=pk["sizes"])))
                continue
            if config.max_len not in rows:
                try:
                    rows[config.max_len] = prepare_rows(config, imgs, pk)
                except ValueError as e:
                    rows[config.max_len] = e
            got = rows[config.max_len]
            out.append(got if isinstance(got, ValueError) else replace(got, config=config))
        return out

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
                    job = self.check_tiled(sweep, point, items, pils, config)
                    jobs += [job] if job else []
            if packed:
                if budgets is None:
                    budgets = [packed_budget(it, s.scale) for it in items]
                scale = s.scale if packed_scale is None else packed_scale
                imgs, pk = prepare_packed(items, pils, budgets, scale, s.device, s.dtype, upscale)
                ref, ref_check = self._reference(sweep, point, imgs)
                for config, inp in zip(packed, self.packed_inputs(packed, items, imgs, pk)):
                    if isinstance(inp, ValueError):
                        self.skipped.append(dict(config=config.name, sweep=sweep, **point,
                                                 tokens=pk["counts"]["tokens"], reason=str(inp)))
                        self.bar.update(1)
                        continue
                    job = self.check_packed(sweep, point, inp, ref, ref_check)
                    jobs += [job] if job else []
                del ref
            self.time_jobs(sweep, point, jobs)


def available_configs(s: Settings) -> tuple[list[Config], list[dict]]:
    """Packed configurations that run here (every backend as one sequence, then every backend in rows of
    ``--rows`` slots), and the others with the registry's own reason."""
    configs, unavailable = [], []
    for b in s.backends:
        c = Config.packed(b)
        try:
            attention.resolve(b, s.device, s.dtype)
            configs.append(c)
        except ValueError as e:  # the message names the reason and the available backends
            unavailable.append(dict(config=c.name, device=s.device.type, reason=str(e)))
    if s.rows:
        configs += [Config.packed(c.backend, max_len=s.rows) for c in list(configs)]
    return configs, unavailable


def _job_count(s: Settings, configs: list[Config]) -> int:
    single = [c for c in configs if c.kind == "packed" and not c.rows]
    jobs = len(configs) + len(tiling.METHODS) + 2 + (len(pipelines(s)) if s.pipeline_images else 0)
    if s.sweeps:
        others = [n for n in s.sweep_images if n != s.num_images]
        jobs += (len([c for c in configs if not c.rows]) * len(others)
                 + len(single) * (len(s.budgets) + len(s.sweep_images)))
    return jobs


def _load(items) -> list:
    return [it.load() for it in items]


def _sweeps(r: _Runner, main_items, pils, configs: list[Config]) -> None:
    """The num_images, resolution (16 images at exactly B tokens each) and small_images sweeps."""
    s = r.s
    configs = [c for c in configs if not c.rows]  # rows: the main set only
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
        errors=r.errors, planning=planning, pipeline=r.pipeline, plots=[])


def run(argv: list[str] | None = None) -> dict:
    """Run the benchmark with command-line style arguments; write the JSON (and plots); return the data.

    Raises :class:`BenchCheckError` when a configuration disagrees with its reference. Taught in `timing`.
    """
    from tqdm.auto import tqdm

    from ..encoder import vit
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
    bar = tqdm(total=_job_count(s, configs) + n_train, desc="bench",
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
    if s.pipeline_images:  # the whole path file -> encoder outputs, per tiling method and for packing
        r.pipeline = run_pipelines(r, main_items[: s.pipeline_images])
    if s.sweeps:
        _sweeps(r, main_items, pils, configs)
    planning = timing.planning(s, bar)
    bar.set_postfix_str("matmul again")
    end = timing.matmul(s)
    bar.update(1)
    bar.close()
    _final_matmul(r, end)
    r.meta["wall_s"] = round(time.perf_counter() - t0, 1)
    r.meta["load_end"] = timing.load_average()
    r.meta["out"] = str(s.out)
    data = _data(r, main_items, unavailable, planning)
    data["targets"] = targets(data)
    s.out.parent.mkdir(parents=True, exist_ok=True)
    if s.plots:
        data["plots"] = save_plots(data, s.out)
    s.out.write_text(json.dumps(data, indent=1, default=str))
    return data
