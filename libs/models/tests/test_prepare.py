"""The bundled model's preparation: converted once, then only checked (checksums of the GGUF and of every file)."""

import shutil

from llmops_models import prepare
from llmops_testkit.inference import prepare_bundled_model


def test_preparation_is_idempotent_and_checksummed(tmp_path):
    prepare_bundled_model()
    prepared = prepare.bundled_model_dir()
    stamp = (prepared / "model.safetensors").stat().st_mtime_ns
    assert prepare.prepare(progress=False) == prepared  # up to date: nothing converted again
    assert (prepared / "model.safetensors").stat().st_mtime_ns == stamp
    source_sha = prepare.sha256_file(prepare.bundled_gguf())
    copy = tmp_path / "copy"
    shutil.copytree(prepared, copy)
    assert prepare.is_prepared(copy, source_sha)
    assert not prepare.is_prepared(copy, "0" * 64)  # made from another GGUF
    with open(copy / "tokenizer_config.json", "a") as f:
        f.write(" ")
    assert not prepare.is_prepared(copy, source_sha)  # a damaged file is noticed
