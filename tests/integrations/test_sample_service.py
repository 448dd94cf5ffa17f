"""The sample service as the demo runs it: real subprocesses and real HTTP."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from changeflow.sample_service import SampleService, start_sample_service
from config.settings import PROJECT_ROOT
from domain.services import ServiceCatalog
from integrations.commands import SubprocessRunner
from tests.integrations.conftest import BROKEN_VERSION, process_gone
from tests.support.waiting import wait_for

CLI = [sys.executable, "-m", "changeflow.sample_service"]


def get(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


def deploy(state_dir: Path, environment: str, version: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "deploy", "--state-dir", str(state_dir), "--environment",
                           environment, "--version", version],
                          capture_output=True, text=True, timeout=60)


def probe(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "probe", "--url", url, "--timeout", "5"],
                          capture_output=True, text=True, timeout=60)


def test_nothing_deployed_answers_503(sample_service: SampleService):
    assert get(f"{sample_service.url}/staging/health") == (503, "nothing deployed to staging\n")
    assert get(f"{sample_service.url}/production/version")[0] == 503
    assert get(f"{sample_service.url}/elsewhere/health")[0] == 404


def test_deploy_switches_the_served_version(sample_service: SampleService, tmp_path: Path):
    state_dir = tmp_path / "sample"
    first = deploy(state_dir, "staging", "1.1.0")
    assert first.returncode == 0
    assert "deployed 1.1.0 to staging (previous: none)" in first.stdout
    assert get(f"{sample_service.url}/staging/version") == (200, "1.1.0\n")
    assert get(f"{sample_service.url}/staging/health") == (200, "ok 1.1.0\n")
    assert get(f"{sample_service.url}/production/health")[0] == 503

    second = deploy(state_dir, "staging", "1.2.0")
    assert "previous: 1.1.0" in second.stdout
    assert get(f"{sample_service.url}/staging/version") == (200, "1.2.0\n")
    state = json.loads((state_dir / "staging.json").read_text())
    assert state["version"] == "1.2.0" and state["previous"] == "1.1.0"
    assert state["deployed_at"].endswith("+00:00")
    assert [p.name for p in state_dir.glob("*.tmp")] == []


def test_a_broken_version_fails_health_and_reports_errors(sample_service: SampleService,
                                                          tmp_path: Path):
    deploy(tmp_path / "sample", "production", BROKEN_VERSION)
    assert get(f"{sample_service.url}/production/health") == (500, f"broken {BROKEN_VERSION}\n")
    assert get(f"{sample_service.url}/production/version") == (200, f"{BROKEN_VERSION}\n")
    status, metrics = get(f"{sample_service.url}/production/metrics")
    assert status == 200 and metrics.startswith("errors ") and metrics != "errors 0\n"

    deploy(tmp_path / "sample", "production", "1.1.0")
    assert get(f"{sample_service.url}/production/metrics") == (200, "errors 0\n")


def test_deploy_refuses_an_empty_version(tmp_path: Path):
    result = deploy(tmp_path / "sample", "staging", "")
    assert result.returncode == 2
    assert "not a version" in result.stderr
    assert not (tmp_path / "sample" / "staging.json").exists()


def test_probe_exit_codes(sample_service: SampleService, tmp_path: Path):
    health = f"{sample_service.url}/staging/health"
    nothing = probe(health)
    assert nothing.returncode == 1 and "503" in nothing.stdout
    deploy(tmp_path / "sample", "staging", "1.1.0")
    ok = probe(health)
    assert ok.returncode == 0 and "200 ok 1.1.0" in ok.stdout
    deploy(tmp_path / "sample", "staging", BROKEN_VERSION)
    broken = probe(health)
    assert broken.returncode == 1 and "500 broken" in broken.stdout


def test_probe_of_a_refused_port_fails(refused_url: str):
    result = probe(refused_url)
    assert result.returncode == 1
    assert "no answer" in result.stdout


def test_stop_leaves_no_process_and_frees_the_port(tmp_path: Path):
    service = start_sample_service(tmp_path / "sample")
    pid, port = service.process.pid, service.port
    service.stop()
    assert service.process.returncode == 0  # SIGTERM is a clean exit
    assert process_gone(pid)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    assert "sample service stopped" in service.log_path.read_text()


def test_context_manager_stops_it(tmp_path: Path):
    with start_sample_service(tmp_path / "sample") as service:
        assert get(f"{service.url}/")[0] == 200
    assert service.process.poll() is not None


def test_serve_exits_cleanly_on_sigterm(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([*CLI, "serve", "--state-dir", str(tmp_path), "--port",
                                    str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "ready at" in log.read_text(), "the ready line", 10, 0.1)
        assert f"ready at http://127.0.0.1:{port}" in log.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_start_reports_a_port_in_use(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(RuntimeError, match="cannot listen"):
            start_sample_service(tmp_path / "sample", port=taken.getsockname()[1])


def test_catalog_deploy_and_rollback_commands_drive_it(sample_service: SampleService,
                                                       tmp_path: Path):
    """The `sample` entry of config/services.yaml, rendered and run as the flows would."""
    raw = yaml.safe_load((PROJECT_ROOT / "config" / "services.yaml").read_text())
    spec = ServiceCatalog.model_validate(raw).services["sample"].environments["production"]
    runner = SubprocessRunner()

    def run(command, version: str, previous: str) -> None:
        argv = command.render({"python": sys.executable, "service": "sample",
                               "environment": "production", "version": version,
                               "previous_version": previous, "var_dir": str(tmp_path)})
        result = runner.run(argv, command.timeout_seconds)
        assert result.ok, result.stderr

    run(spec.deploy, "1.1.0", "")
    run(spec.deploy, BROKEN_VERSION, "1.1.0")
    assert get(f"{sample_service.url}/production/health")[0] == 500
    run(spec.rollback, BROKEN_VERSION, "1.1.0")
    assert get(f"{sample_service.url}/production/health") == (200, "ok 1.1.0\n")
    assert [c.url.path for c in spec.smoke_checks] == ["/production/health",
                                                       "/production/version"]


def test_a_version_broken_in_one_environment_passes_the_other(tmp_path: Path) -> None:
    from changeflow.sample_service import answer, deploy

    for environment in ("staging", "production"):
        deploy(tmp_path, environment, "2.1.0")
    broken = frozenset({"2.1.0@production"})
    assert answer(tmp_path, broken, "/staging/health") == (200, "ok 2.1.0\n")
    assert answer(tmp_path, broken, "/production/health") == (500, "broken 2.1.0\n")
