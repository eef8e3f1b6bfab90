"""The units ``make test`` hands to its pytest-xdist workers (llmops_testkit.scheduling)."""

from llmops_testkit.scheduling import ENGINE_UNIT, unit_of


def test_a_module_on_one_backend_is_one_unit(tmp_path):
    (tmp_path / "test_store.py").write_text("def test_a(sql_url): ...\n")
    assert unit_of("test_store.py::test_a[postgres]", tmp_path) == "test_store.py[postgres]"
    assert unit_of("test_store.py::test_b[sqlite-params3]", tmp_path) == "test_store.py[sqlite]"
    assert unit_of("test_store.py::test_c[x-postgres-7]", tmp_path) == "test_store.py[postgres]"
    assert unit_of("test_store.py::test_d", tmp_path) == "test_store.py"
    assert unit_of("test_store.py::test_e[postgresql]", tmp_path) == "test_store.py"  # not a backend's id


def test_every_module_naming_the_engine_is_one_unit(tmp_path):
    (tmp_path / "test_serving.py").write_text("def test_a(inference_service): ...\n")
    (tmp_path / "test_jobs.py").write_text('def test_b(request): request.getfixturevalue("inference_service")\n')
    (tmp_path / "test_token.py").write_text("def test_a_closed_inference_service_is_refused(): ...\n")
    assert unit_of("test_serving.py::test_a[postgres]", tmp_path) == ENGINE_UNIT
    assert unit_of("test_jobs.py::test_b", tmp_path) == ENGINE_UNIT
    assert unit_of("test_token.py::test_a_closed_inference_service_is_refused", tmp_path) == "test_token.py"
