import stat

from llmops_cli.state import load_secrets, secrets_path, state_dir


def test_state_dir_follows_llmops_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    assert state_dir() == tmp_path / "home"
    assert (tmp_path / "home").is_dir()


def test_state_dir_defaults_to_dot_llmops_in_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("LLMOPS_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert state_dir(create=False) == tmp_path / ".llmops"


def test_secrets_are_generated_once_private_and_stable(tmp_path):
    first = load_secrets(tmp_path)
    assert len(first.admin_token) >= 32 and len(first.key_secret) >= 32
    assert first.admin_token != first.key_secret
    assert stat.S_IMODE(secrets_path(tmp_path).stat().st_mode) == 0o600
    again = load_secrets(tmp_path)
    assert (again.admin_token, again.key_secret) == (first.admin_token, first.key_secret)


def test_missing_secrets_are_not_created_when_reading_only(tmp_path):
    assert load_secrets(tmp_path, create=False) is None
    assert not secrets_path(tmp_path).exists()


def test_a_partial_file_is_completed_and_keeps_its_values(tmp_path):
    path = secrets_path(tmp_path)
    path.write_text("LLMOPS_ADMIN_TOKEN=kept-admin-token-value-1234567890\n")
    path.chmod(0o644)
    secrets = load_secrets(tmp_path)
    assert secrets.admin_token == "kept-admin-token-value-1234567890"
    assert secrets.key_secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secrets(tmp_path).key_secret == secrets.key_secret
