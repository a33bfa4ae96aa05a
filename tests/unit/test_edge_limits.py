"""The edge's connection limits: derived from one open-file budget, coherent with each other."""

from __future__ import annotations

import re

import pytest

from stackctl import capacity, tls
from stackctl.capacity import CapacityError, above_pattern, edge_limits, memory_mib


@pytest.mark.parametrize("bound", [1, 9, 10, 24, 99, 100, 1000, 11832, 15129])
def test_above_pattern_matches_exactly_the_numbers_above_the_bound(bound: int) -> None:
    pattern = re.compile(above_pattern(bound))
    for n in range(0, 3 * bound + 200):
        assert bool(pattern.match(str(n))) == (n > bound), n


@pytest.mark.parametrize(("nofile", "workers"), [(20000, 2), (16384, 2), (16384, 1), (65536, 8)])
def test_the_cap_fits_every_process_that_holds_it(nofile: int, workers: int) -> None:
    limits = edge_limits(nofile, workers)
    assert limits.worker_connections < nofile
    # The busiest nginx worker (its fair share plus the margin) holds two connections per socket
    # and still has the HTTP headroom left.
    share = min(1.0, capacity.WORKER_SHARE_MARGIN / workers)
    busiest = limits.max_connections * share
    assert 2 * busiest + capacity.HTTP_HEADROOM <= limits.worker_connections
    # One Uvicorn worker may get every socket.
    assert limits.max_connections < limits.uvicorn_limit_concurrency < nofile


def test_ten_thousand_websockets_fit_both_run_modes_defaults() -> None:
    assert edge_limits(20000, 2).max_connections >= 10000
    docker = capacity.container_limits({"CONTAINER_NOFILE": "16384", "SERVICE_MEMORY": "1g"})
    assert docker.max_connections >= 10000


def test_memory_bounds_the_cap_in_docker_mode() -> None:
    small = capacity.container_limits({"CONTAINER_NOFILE": "16384", "SERVICE_MEMORY": "512m"})
    room_kib = (512 - capacity.UVICORN_BASE_MIB) * 1024
    assert small.max_connections * capacity.UVICORN_KIB_PER_WEBSOCKET <= room_kib


def test_a_requested_cap_may_lower_but_never_raise_the_derived_one() -> None:
    assert edge_limits(20000, 2, requested_max=24).max_connections == 24
    with pytest.raises(CapacityError, match="EDGE_MAX_CONNECTIONS"):
        edge_limits(20000, 2, requested_max=edge_limits(20000, 2).max_connections + 1)
    with pytest.raises(CapacityError):
        edge_limits(20000, 2, requested_max=0)


def test_too_small_a_budget_is_refused() -> None:
    with pytest.raises(CapacityError, match="too low"):
        edge_limits(1024, 2)


@pytest.mark.parametrize(
    ("raw", "mib"), [("512m", 512), ("1g", 1024), ("1GB", 1024), ("1073741824", 1024)]
)
def test_memory_sizes_in_compose_notation(raw: str, mib: int) -> None:
    assert memory_mib(raw) == mib


def test_only_half_a_tls_pair_is_refused(tmp_path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(tls.TlsError, match="both"):
        tls.ensure_certificate(tmp_path, {"TLS_CERT": str(cert)})
    with pytest.raises(tls.TlsError, match="no such file"):
        tls.ensure_certificate(tmp_path, {"TLS_CERT": str(cert), "TLS_KEY": str(tmp_path / "k")})


def test_a_self_signed_pair_is_made_once_and_reused(tmp_path) -> None:
    first = tls.ensure_certificate(tmp_path, {})
    made = first.cert.read_bytes()
    again = tls.ensure_certificate(tmp_path, {})
    assert first.self_signed and again.cert.read_bytes() == made
    assert (tmp_path / "tls").stat().st_mode & 0o777 == 0o700


def test_empty_directories_left_at_the_pair_paths_are_replaced(tmp_path) -> None:
    # What an engine leaves at a bind-mount source that did not exist when a container started.
    for name in ("cert.pem", "key.pem"):
        (tmp_path / "tls" / name).mkdir(parents=True)
    pair = tls.ensure_certificate(tmp_path, {})
    assert pair.cert.is_file() and pair.key.is_file()
    assert pair.cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
