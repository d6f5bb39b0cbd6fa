"""The command line of ``python -m anyres_tutorial.bench``: the options, the named presets and the resolved
:class:`Settings`. Taught in `timing`.

``--preset gpu`` is THE GPU comparison, one command for one H100 or H200 (bf16, full resolution; its time
budget is worked out in ``tools/gpu_estimate.py``); ``--preset gpu --device cpu --dry-run`` runs the same code
paths at tiny sizes on a CPU. Options given after a preset still win (:func:`expand`).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import tiling
from ..encoder import attention

GPU = ["--device", "cuda", "--dtype", "bfloat16", "--scale", "1", "--num-images", "16", "--repeats", "10",
       "--warmup", "3", "--sweep-images", "1,4,16,64", "--budgets", "256,1024,2048,4096",
       "--small-budget", "256", "--dense-max-tokens", "70000", "--max-mask-gib", "2", "--matmul-n", "8192",
       "--plan-sizes", "2000", "--time-budget-s", "300", "--on-check-failure", "skip", "--rows", "4096",
       "--pipeline-images", "16", "--train"]
#: The dry run: tiles of 28 px, 4 images, budgets of 4 and 12 tokens (one flex bucket), a 128 x 128 matmul, a
#: 16 KiB mask limit (so that the memory skip happens), 1 warm-up and 1 timed run, 1 thread (2 threads of a
#: shared 2-core machine ran its tiny matmuls 8x slower).
GPU_DRY_RUN = ["--device", "auto", "--dtype", "auto", "--scale", "0.0834", "--num-images", "4", "--repeats",
               "1", "--warmup", "1", "--sweep-images", "1,2", "--budgets", "4,12", "--small-budget", "4",
               "--dense-max-tokens", "70000", "--max-mask-gib", "0.000015", "--matmul-n", "128",
               "--plan-sizes", "20", "--time-budget-s", "600", "--threads", "1", "--on-check-failure", "skip",
               "--rows", "256", "--pipeline-images", "2", "--train"]
#: preset name -> (options, options of its dry run)
PRESETS = {"gpu": (GPU, GPU_DRY_RUN)}


def expand(argv: list[str]) -> list[str]:
    """``argv`` with the options of its ``--preset`` (and ``--dry-run``) put in front, so that options given
    on the command line still win; unchanged without a preset."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", choices=sorted(PRESETS), default=None)
    pre.add_argument("--dry-run", action="store_true")
    known, _ = pre.parse_known_args(argv)
    if known.preset is None:
        return list(argv)
    full, dry = PRESETS[known.preset]
    return list(dry if known.dry_run else full) + list(argv)


def _int_list(text: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers: {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return vals


def _int_at_least(lowest: int, what: str):
    """argparse type: an integer >= ``lowest`` (``what`` names it in the error)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or v < lowest:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    return parse


_pos_int = _int_at_least(1, "a positive integer")
_nonneg_int = _int_at_least(0, "an integer >= 0")


def _scale(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not (0 < v <= 1):
        raise argparse.ArgumentTypeError(f"--scale must be in (0, 1], got {text!r}")
    return v


def _positive_number(what: str):
    """argparse type: a number > 0 (``what`` names the option in the error)."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = float("nan")
        if not v > 0:
            raise argparse.ArgumentTypeError(f"{what} must be a number > 0, got {text!r}")
        return v

    return parse


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``python -m anyres_tutorial.bench`` (defaults depend on the device)."""
    p = argparse.ArgumentParser(
        prog="python -m anyres_tutorial.bench",
        description=f"Tiled batches ({tiling.DEFAULT_METHOD}) vs packed sequences "
        f"({' / '.join(attention.BACKENDS)}) on the real DINOv2 ViT-S/14. Writes a JSON file of results and "
        "PNG plots next to it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--quick", action="store_true",
                   help="small sizes and few repeats (tests, notebook default)")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help="a named set of the options below, sized for one machine (gpu: one H100/H200 in "
                   "<= 6 minutes, see tools/gpu_estimate.py); options given after it still win")
    p.add_argument("--dry-run", action="store_true",
                   help="with --preset: the preset's every code path at tiny sizes (a CPU check that the "
                   "preset still runs)")
    p.add_argument("--weights", type=Path, default=None,
                   help="exported weights file or folder (python -m anyres_tutorial.encoder.weights "
                   "export); "
                   "default: $ANYRES_WEIGHTS, else the offline cache")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON path, or a folder (no suffix) for the default name (default "
                   "results/<device>-<date>.json, <device> = cpu or the GPU name, e.g. nvidia-h200; quick: "
                   "results/tmp/quick-<device>.json; dry run: results/tmp/dryrun-<device>.json)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto = cuda if available")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                   help="auto = bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--threads", type=_pos_int, default=None,
                   help="CPU threads (default: torch.get_num_threads())")
    p.add_argument("--num-images", type=_pos_int, default=16, help="images in the main mixed set")
    p.add_argument("--scale", type=_scale, default=None,
                   help="encoder resolution factor (default 1: 336 px LLaVA-NeXT tiles; 1/4 with --quick)")
    p.add_argument("--repeats", type=_pos_int, default=None,
                   help="timed runs per point (default CUDA 10, CPU 3)")
    p.add_argument("--warmup", type=_nonneg_int, default=None,
                   help="warm-up runs after the check run, which is itself the first warm-up and compiles "
                   "flex; all happen before the first timed round (default CUDA 2, CPU 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic image distribution")
    p.add_argument("--backends", default=",".join(attention.BACKENDS),
                   help="comma-separated packed attention backends to try (any registered backend)")
    p.add_argument("--tiling-methods", default="",
                   help="extra tiling methods to run as tiled-<method> (e.g. internvl,ureader)")
    p.add_argument("--sweeps", action=argparse.BooleanOptionalAction, default=True,
                   help="run the num_images / resolution / small_images sweeps")
    p.add_argument("--sweep-images", type=_int_list, default=None,
                   help="num_images sweep points (default CUDA 1,2,4,...,64; CPU 1,4,16,64; quick 1,4,16)")
    p.add_argument("--budgets", type=_int_list, default=None,
                   help="resolution sweep: tokens per image, 16 images (default CPU 64,128,256,512,1024; "
                   "CUDA 64,256,576,1024,2048; quick 16,64)")
    p.add_argument("--small-budget", type=_pos_int, default=None,
                   help="small_images sweep: max tokens per image (default CPU 64, CUDA 256, quick 16)")
    p.add_argument("--dense-max-tokens", type=_pos_int, default=None,
                   help="skip backends that attend all pairs (dense_mask) above this many packed tokens "
                   "(default CPU 8500, CUDA 70000)")
    p.add_argument("--rows", type=_nonneg_int, default=None, metavar="MAX_LEN",
                   help="also run every packed backend on the images packed into rows of MAX_LEN slots "
                   "(packing.pack_images, as training packs; configurations "
                   "packed-<backend>-rows<MAX_LEN>) in the main set; 0: only the "
                   "single unbounded sequence (default "
                   "4096, quick 256)")
    p.add_argument("--pipeline-images", type=_nonneg_int, default=None,
                   help="time the whole pipeline (decode -> plan -> resize/pad/crop -> normalise -> ViT) for "
                   "every tiling method and for packing on the first N main-set images; 0: skip (default "
                   "CPU 2, CUDA 16)")
    p.add_argument("--max-mask-gib", type=_positive_number("--max-mask-gib"), default=None,
                   help="skip a backend whose attention mask alone (its registry memory estimate) would "
                   "exceed this many GiB (recorded in skipped); default no limit")
    p.add_argument("--time-budget-s", type=_positive_number("--time-budget-s"), default=None,
                   help="stop starting new sweep points after this many seconds (the rest is recorded in "
                   "skipped; the main set always runs); default no limit")
    p.add_argument("--on-check-failure", default="abort", choices=("abort", "skip"),
                   help="a configuration that fails its check before timing: abort the run, or record the "
                   "failure (checks, errors) and go on without timing it")
    p.add_argument("--train", action="store_true",
                   help="also time one training step (forward + per-image loss + backward + SGD step) on "
                   "the main set: train-tiled and train-packed-<backend> for every backend that can run "
                   "backward here, each with its gradients checked against the reference first")
    p.add_argument("--dp-ranks", type=_nonneg_int, default=None, metavar="N",
                   help="with --train: also time data-parallel training steps on N ranks (torch.distributed: "
                   "gloo on CPU, NCCL with one GPU per rank), naive vs balanced assignment of images to "
                   "ranks; 0: none (default: CPU 2, CUDA the number of GPUs when there are at least 2, "
                   "else 0)")
    p.add_argument("--save-costs", action="store_true",
                   help="store the cost model fitted to this run's packed timings as the one 'auto' uses "
                   "on this kind of device (anyres_tutorial/encoder/costs.json)")
    p.add_argument("--matmul-n", type=_pos_int, default=None,
                   help="side of the square yardstick matmul (default CUDA 8192, CPU 2048)")
    p.add_argument("--plan-sizes", type=_pos_int, default=None,
                   help="distinct image sizes per planning-throughput timing (default 2000; quick 300)")
    p.add_argument("--no-plots", action="store_true", help="write the JSON only")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


@dataclass
class Settings:
    """Resolved run settings (every default filled in for the chosen device)."""

    quick: bool
    out: Path
    device: torch.device
    dtype: torch.dtype
    threads: int
    num_images: int
    scale: float
    repeats: int
    warmup: int
    seed: int
    backends: list[str]  # registered attention backends to try, the reference first
    tiling_methods: list[str]  # extra tiling methods (the reference tiling always runs)
    sweeps: bool
    sweep_images: list[int]
    budgets: list[int]
    small_budget: int
    dense_max_tokens: int
    plan_sizes: int
    plots: bool
    progress: bool
    preset: str | None = None
    dry_run: bool = False
    weights: Path | None = None  # exported weights (None: $ANYRES_WEIGHTS, else the offline cache)
    max_mask_bytes: int | None = None
    time_budget_s: float | None = None
    matmul_n: int = 2048
    on_check_failure: str = "abort"  # or "skip": record a failed check and go on
    train: bool = False  # also time training steps (train-* configurations)
    rows: int = 0  # max_len of the packed-<backend>-rows<max_len> configurations (0: none)
    pipeline_images: int = 0  # images of the pipeline timing (0: none)
    save_costs: bool = False  # store the fitted cost model for 'auto'
    dp_ranks: int = 0  # ranks of the data-parallel training point (--train; 0: none)


def _device_dtype(args, parser) -> tuple[torch.device, torch.dtype]:
    if args.device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(args.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            parser.error("--device cuda was requested but torch.cuda.is_available() is False on this machine")
    if args.dtype == "auto":
        return dev, torch.bfloat16 if dev.type == "cuda" else torch.float32
    return dev, getattr(torch, args.dtype)


def _backends(args, parser) -> list[str]:
    """The ``--backends`` that the attention registry knows, the reference backend first."""
    backends = list(dict.fromkeys(_names(args.backends)))
    bad = [b for b in backends if b not in attention.BACKENDS]
    if bad or not backends:
        parser.error(f"--backends: unknown backend(s) {bad or backends}; registered: "
                     f"{', '.join(attention.BACKENDS)}")
    if attention.REFERENCE not in backends:
        backends.insert(0, attention.REFERENCE)  # the reference of every check
    return backends


def _tiling_methods(args, parser) -> list[str]:
    methods = _names(args.tiling_methods)
    bad = [m for m in methods if m not in tiling.METHODS]
    if bad:
        parser.error(f"--tiling-methods: unknown method(s) {bad}; choose from {', '.join(tiling.METHODS)}")
    return [m for m in dict.fromkeys(methods) if m != tiling.DEFAULT_METHOD]


def device_slug(dev: torch.device) -> str:
    """``cpu``, or the GPU's name in lower case with dashes (``NVIDIA H200`` -> ``nvidia-h200``): the
    ``<device>`` of result file names."""
    if dev.type != "cuda":
        return dev.type
    name = torch.cuda.get_device_name(dev)
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split()) or "cuda"


def _out_path(args, parser, dev: torch.device) -> Path:
    out = args.out
    if out is None or out.is_dir() or not out.suffix:  # a folder: the default file name inside it
        from .. import ROOT

        slug, date = device_slug(dev), _dt.date.today().isoformat()
        name = (f"tmp/quick-{slug}.json" if args.quick else f"tmp/dryrun-{slug}.json" if args.dry_run
                else f"{slug}-{date}.json")
        out = ROOT / "results" / name if out is None else Path(out) / Path(name).name
    out = Path(out)
    if out.suffix.lower() != ".json":
        parser.error(f"--out must name a .json file or a folder, got {str(out)!r}")
    return out


def _device_defaults(quick: bool, cuda: bool) -> dict:
    """The defaults that depend on the device and on ``--quick`` (see ``--help``)."""
    return dict(
        scale=0.25 if quick else 1.0,
        repeats=10 if cuda else 3,
        warmup=2 if cuda else 0,  # CPU: the check run (outside the timed rounds) is the warm-up
        sweep_images=[1, 4, 16] if quick else ([1, 2, 4, 8, 16, 32, 64] if cuda else [1, 4, 16]),
        budgets=[16, 64] if quick else ([64, 256, 576, 1024, 2048] if cuda else [64, 128, 256, 512, 1024]),
        small_budget=16 if quick else (256 if cuda else 64),
        dense_max_tokens=70000 if cuda else 8500,
        plan_sizes=300 if quick else 2000,
        matmul_n=8192 if cuda else 2048,
        rows=256 if quick else 4096,
        pipeline_images=16 if cuda else 2,
    )


def resolve_settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Settings:
    """Settings from parsed arguments; a bad combination exits through ``parser.error`` (exit code 2)."""
    if args.dry_run and not args.preset:
        parser.error("--dry-run goes with --preset (e.g. --preset gpu --device cpu --dry-run)")
    dev, dtype = _device_dtype(args, parser)
    backends, methods = _backends(args, parser), _tiling_methods(args, parser)
    out = _out_path(args, parser, dev)
    d = _device_defaults(args.quick, dev.type == "cuda")
    given = {k: getattr(args, k) for k in d}
    v = {k: d[k] if given[k] is None else given[k] for k in d}
    return Settings(
        quick=args.quick, out=out, device=dev, dtype=dtype,
        threads=args.threads or torch.get_num_threads(), num_images=args.num_images,
        scale=v["scale"], repeats=v["repeats"], warmup=v["warmup"], seed=args.seed,
        backends=backends, tiling_methods=methods, sweeps=args.sweeps,
        sweep_images=sorted(set(v["sweep_images"])), budgets=sorted(set(v["budgets"])),
        small_budget=v["small_budget"], dense_max_tokens=v["dense_max_tokens"], plan_sizes=v["plan_sizes"],
        plots=not args.no_plots, progress=not args.no_progress,
        preset=args.preset, dry_run=args.dry_run, weights=args.weights,
        max_mask_bytes=None if args.max_mask_gib is None else int(args.max_mask_gib * 2**30),
        time_budget_s=args.time_budget_s, matmul_n=v["matmul_n"], on_check_failure=args.on_check_failure,
        train=args.train, rows=v["rows"], pipeline_images=v["pipeline_images"], save_costs=args.save_costs,
        dp_ranks=_dp_ranks(args, dev),
    )


def _dp_ranks(args, dev: torch.device) -> int:
    """Ranks of the data-parallel point: as asked, else 2 on a CPU and one per GPU when there are >= 2."""
    if args.dp_ranks is not None:
        return args.dp_ranks
    gpus = torch.cuda.device_count() if dev.type == "cuda" else 0
    return 2 if dev.type == "cpu" else (gpus if gpus >= 2 else 0)


def parse_settings(argv: list[str] | None = None) -> Settings:
    """``argv`` (command-line style; None = ``sys.argv[1:]``) -> :class:`Settings`. A ``--preset`` puts its
    options before ``argv`` (:func:`expand`)."""
    parser = build_parser()
    argv = expand(sys.argv[1:] if argv is None else list(argv))
    return resolve_settings(parser.parse_args(argv), parser)
