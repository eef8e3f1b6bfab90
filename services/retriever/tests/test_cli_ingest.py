"""``llmops ingest`` against a real retriever."""

import os
import subprocess
import sys

import pytest


def llmops(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llmops_cli.main", *args],
        env={**os.environ, **env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "guides").mkdir()
    (tmp_path / "guides" / "ferries.md").write_text("# Ferries\n\nThe ferry Moth Queen sails to Strand Isle at dusk.")
    (tmp_path / "notes.txt").write_text("The tide gauge at Kelmouth pier was calibrated by Ilsabet Norrow.")
    (tmp_path / "page.html").write_text("<html><body><p>The smokehouse cures herring over juniper.</p></body></html>")
    (tmp_path / "table.csv").write_text("not,ingested\n")  # not a supported type: skipped when found in a folder
    return tmp_path


def test_ingest_a_folder_then_again(edge_retriever, collection_name, folder):
    env = {"LLMOPS_RETRIEVER_URL": edge_retriever.url, "LLMOPS_ADMIN_TOKEN": edge_retriever.admin_token}
    first = llmops(
        "ingest", str(folder), "--collection", collection_name, "--hybrid", "-m", "year=2024", "-m", "lang=en", env=env
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().endswith(f"3 documents, 3 chunks ingested into {collection_name}; 0 failed")
    assert "guides:ferries.md" in first.stderr and "Traceback" not in first.stderr

    hits = edge_retriever.search(collection_name, "Which ferry goes to Strand Isle?", top_k=1)
    assert hits[0]["document_id"] == "guides:ferries.md" and hits[0]["metadata"] == {"year": 2024, "lang": "en"}
    with edge_retriever.admin() as admin:
        described = admin.get(f"/v1/collections/{collection_name}").json()
    assert described["hybrid"] is True and described["points_count"] == 3

    (folder / "notes.txt").write_text("The tide gauge at Kelmouth pier was last calibrated by Brannoc Heale.")
    again = llmops("ingest", str(folder), "--collection", collection_name, env=env)
    assert again.returncode == 0, again.stderr
    assert edge_retriever.search(collection_name, "Who calibrated the tide gauge?", top_k=1)[0]["text"].endswith(
        "Heale."
    )
    with edge_retriever.admin() as admin:
        assert admin.get(f"/v1/collections/{collection_name}").json()["points_count"] == 3  # replaced, not added


def test_ingest_errors_are_one_line_and_a_failing_exit(edge_retriever, collection_name, folder):
    env = {"LLMOPS_RETRIEVER_URL": edge_retriever.url, "LLMOPS_ADMIN_TOKEN": edge_retriever.admin_token}
    missing = llmops("ingest", str(folder / "notes.txt"), "--collection", collection_name, "--no-create", env=env)
    assert missing.returncode == 1 and "404" in missing.stderr and "Traceback" not in missing.stderr
    unsupported = llmops("ingest", str(folder / "table.csv"), "--collection", collection_name, env=env)
    assert unsupported.returncode == 1 and "415" in unsupported.stderr
    nothing = llmops("ingest", str(folder / "nope.txt"), "--collection", collection_name, env=env)
    assert nothing.returncode == 1 and "no such file" in nothing.stderr
    wrong = llmops("ingest", str(folder), "--collection", collection_name, env={**env, "LLMOPS_ADMIN_TOKEN": "x" * 30})
    assert wrong.returncode == 1 and "401" in wrong.stderr and "Traceback" not in wrong.stderr
