"""`make serve` (`changeflow up`): a server, every deployment, and a clean stop on Ctrl-C."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from changeflow.prefect_server import free_port, local_prefect_server
from config.settings import PROJECT_ROOT
from tests.support.processes import processes_mentioning

SPEC = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())["deployments"]


def post(url: str, body: dict[str, Any], auth: str) -> Any:
    """POST to the API with its user:password (basic authentication)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json",
                                              "authorization": "Basic " + base64.b64encode(
                                                  auth.encode()).decode()})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def test_up_serves_every_deployment_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CHANGEFLOW_", "PREFECT_"))}
    env.update(CHANGEFLOW_VAR_DIR=str(tmp_path / "var"), CHANGEFLOW_JIRA_TOKEN="witness-up")
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen([str(Path(sys.executable).with_name("changeflow")), "up",
                               "--port", str(port)], cwd=PROJECT_ROOT, env=env, stdout=out,
                              stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api"
    auth_file = tmp_path / "var" / "prefect-auth"
    try:
        deadline = time.monotonic() + 120
        served: set[str] = set()
        expected = {d["name"] for d in SPEC} - {"jira-sync"}  # tickets are local here
        while served != expected:
            assert up.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(1)
            try:
                served = {d["name"] for d in post(f"{api}/deployments/filter", {},
                                                  auth_file.read_text().strip())}
            except OSError:
                continue
        auth = auth_file.read_text().strip()
        assert auth_file.stat().st_mode & 0o777 == 0o600 and auth.startswith("changeflow:")
        text = log.read_text()
        assert f"Prefect UI: http://127.0.0.1:{port}" in text
        assert "not serving jira-sync: CHANGEFLOW_TICKETS is not jira" in text
        limits = post(f"{api}/v2/concurrency_limits/filter", {}, auth)
        assert {"deploy-sample"} <= {c["name"] for c in limits}
        blocks = post(f"{api}/block_documents/filter", {}, auth)
        assert "changeflow-jira-token" in {b["name"] for b in blocks}
        assert "witness-up" not in text and auth not in text
    finally:
        up.send_signal(signal.SIGINT)  # Ctrl-C
        up.wait(timeout=60)
    assert up.returncode == 0, log.read_text()
    assert "stopped; the server's state is kept in" in log.read_text()
    time.sleep(1)
    assert processes_mentioning(str(tmp_path)) == [], "changeflow up left processes behind"
    with local_prefect_server(tmp_path / "var" / "prefect", auth_string=auth) as again:
        (follow_up,) = post(f"{again}/deployments/filter", {"deployments": {  # schedules stay
            "name": {"any_": ["emergency-follow-up"]}}}, auth)
    assert follow_up["schedules"] and not follow_up["paused"]
