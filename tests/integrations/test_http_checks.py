"""HttpChecks against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from domain.services import HttpCheck
from integrations.http_checks import HttpChecks


def check(url: str, **kwargs: object):
    return HttpChecks().check(HttpCheck(name="health", url=url, **kwargs))


def test_200_passes(http_server: str):
    result = check(f"{http_server}/ok")
    assert result.passed
    assert result.status_code == 200
    assert result.name == "health"
    assert result.url == f"{http_server}/ok"
    assert result.duration_seconds >= 0


def test_500_fails_with_its_status(http_server: str):
    result = check(f"{http_server}/fail")
    assert not result.passed
    assert result.status_code == 500
    assert "expected status 200, got 500" in result.detail
    assert "internal error" in result.detail


def test_expected_non_200_status_passes(http_server: str):
    assert check(f"{http_server}/fail", expect_status=500).passed


def test_body_must_contain_the_substring(http_server: str):
    assert check(f"{http_server}/ok", contains="errors 0").passed
    result = check(f"{http_server}/ok", contains="errors 0\nmore")
    assert not result.passed
    assert result.status_code == 200
    assert "lacks" in result.detail


def test_refused_connection_is_a_failed_check(refused_url: str):
    result = check(refused_url)
    assert not result.passed
    assert result.status_code is None
    assert "connection failed" in result.detail
    assert "refused" in result.detail.lower()


def test_no_answer_times_out_quickly(stalled_url: str):
    result = check(stalled_url, timeout_seconds=0.3)
    assert not result.passed
    assert result.status_code is None
    assert result.detail == "timed out after 0.3 s waiting for the answer"
    assert result.duration_seconds < 5


def test_body_that_stops_arriving_times_out(http_server: str):
    result = check(f"{http_server}/body-stall", timeout_seconds=0.3)
    assert not result.passed
    assert result.detail == "timed out after 0.3 s reading the body"
    assert result.duration_seconds < 5


def test_unresolvable_host_is_a_failed_check():
    result = check("http://nonexistent.invalid/health", timeout_seconds=2)
    assert not result.passed
    assert result.status_code is None


def test_sample_service_monitor_sees_a_broken_version(sample_service, tmp_path):
    from changeflow.sample_service import deploy

    monitor = HttpCheck(name="error-rate", url=f"{sample_service.url}/production/metrics",
                        contains="errors 0")
    deploy(tmp_path / "sample", "production", "1.1.0")
    assert HttpChecks().check(monitor).passed
    deploy(tmp_path / "sample", "production", "2.1.0")
    result = HttpChecks().check(monitor)
    assert not result.passed
    assert "errors 37" in result.detail
