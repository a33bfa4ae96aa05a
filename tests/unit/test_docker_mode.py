"""Docker mode's pure parts: published-port parsing, the image inventory, stand-in recipes,
the server variants as compose profiles."""

from __future__ import annotations

import pytest

from gateway_common import variants
from stackctl import docker, images
from stackctl.native import record_selection
from stackctl.settings import SettingsError, load_settings, split_bind


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("8080", (None, 8080)),
        ("127.0.0.1:38080", ("127.0.0.1", 38080)),
        ("[::1]:80", ("[::1]", 80)),
    ],
)
def test_a_published_port_may_name_its_bind_address(raw, expected):
    assert split_bind("HTTP_PORT", raw) == expected


@pytest.mark.parametrize("raw", ["localhost:8080", "127.0.0.1:", "1.2.3.4:99999", "eighty"])
def test_a_bad_published_port_is_a_clear_error(raw):
    with pytest.raises(SettingsError, match="HTTP_PORT"):
        split_bind("HTTP_PORT", raw)


def test_native_mode_takes_the_port_of_an_address_and_port():
    settings = load_settings("default", {"HTTP_PORT": "127.0.0.1:38080"})
    assert settings.ports["public"] == 38080


def test_every_image_is_pulled_stood_in_for_or_explained():
    for image in images.required_images():
        repository = images.ImageRef(image).repository
        known = (
            repository in images.STANDINS
            or repository in images.UNAVAILABLE
            or repository == images.PYTHON_REPOSITORY
        )
        assert known, f"{image}: no stand-in recipe and no reason in stackctl/images.py"
    assert set(images.STANDINS).isdisjoint(images.UNAVAILABLE)


def test_project_dockerfiles_build_from_the_python_base_only():
    bases = images.dockerfile_bases()
    assert {images.ImageRef(base).repository for base in bases} == {images.PYTHON_REPOSITORY}


def test_a_stand_in_keeps_the_real_images_entrypoint_and_user():
    recipe = images.STANDINS["prom/prometheus"]
    dockerfile = recipe.dockerfile("base:tag", "label-1")
    assert dockerfile.startswith("FROM base:tag\n")
    assert 'ENTRYPOINT ["/usr/bin/prometheus"]' in dockerfile
    assert "USER 65534:65534" in dockerfile
    assert f'LABEL {images.STANDIN_LABEL}="label-1"' in dockerfile
    assert "--no-install-recommends prometheus " in dockerfile


def _settings(tmp_path, **environ: str):
    return load_settings("default", {"STATE_DIR": str(tmp_path), **environ})


def test_all_variants_are_the_matrix_profile_and_a_name_is_its_own():
    assert docker.variant_profiles(variants.parse_selection("all")) == ["matrix"]
    chosen = variants.parse_selection("tornado,flask-gevent")
    assert docker.variant_profiles(chosen) == ["flask-gevent", "tornado"]  # registry order
    assert docker.variant_profiles(variants.parse_selection("")) == []


def test_every_compose_call_gets_the_selection_as_variants_and_profiles(tmp_path):
    settings = _settings(tmp_path, VARIANTS="flask-gevent, fastapi-daphne")
    env = docker.compose_env(settings)
    assert env["VARIANTS"] == "flask-gevent,fastapi-daphne"
    assert env["COMPOSE_PROFILES"] == "flask-gevent,fastapi-daphne"
    everything = docker.compose_env(_settings(tmp_path, VARIANTS="all"))
    assert everything["VARIANTS"] == ",".join(variants.EXTRA_NAMES)
    assert everything["COMPOSE_PROFILES"] == "matrix"


def test_profiles_the_user_sets_are_kept_beside_the_variants(tmp_path):
    env = docker.compose_env(_settings(tmp_path, VARIANTS="all", COMPOSE_PROFILES="loadtest"))
    assert env["COMPOSE_PROFILES"] == "loadtest,matrix"


def test_what_up_recorded_is_what_later_commands_act_on(tmp_path):
    settings = _settings(tmp_path, VARIANTS="tornado")
    assert [v.name for v in docker.requested_selection(settings)] == ["flask", "fastapi", "tornado"]
    record_selection(settings, variants.parse_selection("all"))
    # `reload` or `down` with another VARIANTS in the environment still see what runs.
    assert docker.selection(settings) == variants.VARIANTS
    assert docker.compose_env(settings)["COMPOSE_PROFILES"] == "matrix"
    # `up` starts what is asked now.
    assert [v.name for v in docker.requested_selection(settings)][-1] == "tornado"


def test_an_unknown_variant_is_a_settings_error(tmp_path):
    with pytest.raises(SettingsError, match="no-such-server"):
        docker.compose_env(_settings(tmp_path, VARIANTS="no-such-server"))
