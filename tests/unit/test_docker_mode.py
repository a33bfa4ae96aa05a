"""Docker mode's pure parts: published-port parsing, the image inventory, stand-in recipes."""

from __future__ import annotations

import pytest

from stackctl import images
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
