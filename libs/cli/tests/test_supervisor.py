"""The supervisor against a stand-in service: python's http.server serving a file named ``readyz``."""

import os
import signal
import sys
import threading
import time

import pytest

from llmops_cli.procs import free_port
from llmops_cli.supervisor import ServiceSpec, StartupError, Supervisor, is_ready


def _fake_service(tmp_path, name="fake", **kwargs) -> ServiceSpec:
    www = tmp_path / "www"
    www.mkdir(exist_ok=True)
    (www / "readyz").write_text("ok")
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(www)]
    return ServiceSpec(name=name, argv=argv, port=port, **kwargs)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _wait(predicate, timeout_s=10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_start_ready_restart_after_crash_and_stop(tmp_path):
    spec = _fake_service(tmp_path)
    events: list[str] = []
    stop = threading.Event()
    sup = Supervisor([spec], log_dir=tmp_path / "logs", stop=stop, on_event=events.append)
    watcher = None
    try:
        sup.start_all()
        assert sup.wait_ready()
        assert (tmp_path / "logs" / "fake.log").exists()
        first_pid = sup.children[0].proc.pid

        watcher = threading.Thread(target=sup.watch, kwargs={"poll_s": 0.05})
        watcher.start()
        os.kill(first_pid, signal.SIGKILL)  # a crash
        assert _wait(lambda: sup.children[0].proc.pid != first_pid and is_ready(spec.url + "/readyz"))
        assert any("exited" in e for e in events) and any("restarting" in e for e in events)
        assert sup.children[0].backoff_s == 2.0  # doubled for the next crash
    finally:
        stop.set()
        if watcher:
            watcher.join()
        last_pid = sup.children[0].proc.pid
        sup.stop_all(timeout_s=5)
    assert _gone(last_pid)
    assert not is_ready(spec.url + "/readyz")


def test_a_service_that_exits_while_starting_fails_startup_with_its_log(tmp_path):
    spec = ServiceSpec(
        name="broken", argv=[sys.executable, "-c", "print('bad config'); raise SystemExit(3)"], port=free_port()
    )
    sup = Supervisor([spec], log_dir=tmp_path, stop=threading.Event())
    sup.start_all()
    with pytest.raises(StartupError, match="(?s)exited with code 3.*bad config"):
        sup.wait_ready()
    sup.stop_all()


def test_stop_escalates_to_sigkill_for_a_child_ignoring_sigterm(tmp_path):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    spec = ServiceSpec(name="stubborn", argv=[sys.executable, "-c", code], port=free_port())
    sup = Supervisor([spec], log_dir=tmp_path, stop=threading.Event())
    sup.start_all()
    assert _wait(lambda: "up" in (tmp_path / "stubborn.log").read_text())
    pid = sup.children[0].proc.pid
    started = time.monotonic()
    sup.stop_all(timeout_s=1)
    assert 0.9 < time.monotonic() - started < 5
    assert _gone(pid)


def test_waiting_for_readiness_ends_when_asked_to_stop(tmp_path):
    # A process that never serves /readyz.
    spec = ServiceSpec(name="slow", argv=[sys.executable, "-c", "import time; time.sleep(60)"], port=free_port())
    stop = threading.Event()
    sup = Supervisor([spec], log_dir=tmp_path, stop=stop)
    sup.start_all()
    threading.Timer(0.5, stop.set).start()
    assert sup.wait_ready() is False
    sup.stop_all(timeout_s=2)


def test_restart_with_a_setting_known_only_later_replaces_the_process_with_it(tmp_path):
    code = "import os, time; print('judge key:', os.environ.get('LATE_SETTING'), flush=True); time.sleep(60)"
    spec = ServiceSpec(name="worker", argv=[sys.executable, "-c", code], port=free_port(), env={"EARLY": "1"})
    sup = Supervisor([spec], log_dir=tmp_path, stop=threading.Event())
    sup.start_all()
    try:
        assert _wait(lambda: "judge key: None" in (tmp_path / "worker.log").read_text())
        first_pid = sup.children[0].proc.pid
        sup.restart("worker", env={"LATE_SETTING": "sk-llmops-late"})
        assert _gone(first_pid) and sup.children[0].proc.pid != first_pid
        assert _wait(lambda: "judge key: sk-llmops-late" in (tmp_path / "worker.log").read_text())
        assert sup.children[0].spec.env == {"EARLY": "1", "LATE_SETTING": "sk-llmops-late"}
    finally:
        sup.stop_all(timeout_s=2)
