"""The command line of ``python -m anyres_tutorial.bench``: arguments, the resolved :class:`Settings` and
``main``. Taught in `timing`.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import tiling
from ..encoder import attention
from .config import REFERENCE_BACKEND
from .preset import PRESETS, expand


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
                   "<= 6 minutes, see anyres_tutorial.bench.preset); options given after it still win")
    p.add_argument("--dry-run", action="store_true",
                   help="with --preset: the preset's every code path at tiny sizes (a CPU check that the "
                   "preset still runs)")
    p.add_argument("--weights", type=Path, default=None,
                   help="exported weights file or folder (python -m anyres_tutorial.encoder.weights export); "
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
                   "backward here, each with its gradients checked against loop first (see bench.train)")
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
    extra: dict = field(default_factory=dict)
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
    if REFERENCE_BACKEND not in backends:
        backends.insert(0, REFERENCE_BACKEND)  # the reference of every check
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
        train=args.train, rows=v["rows"], pipeline_images=v["pipeline_images"],
    )


def parse_settings(argv: list[str] | None = None) -> Settings:
    """``argv`` (command-line style; None = ``sys.argv[1:]``) -> :class:`Settings`. A ``--preset`` puts its
    options before ``argv`` (see :func:`anyres_tutorial.bench.preset.expand`)."""
    parser = build_parser()
    argv = expand(sys.argv[1:] if argv is None else list(argv), parser)
    return resolve_settings(parser.parse_args(argv), parser)
