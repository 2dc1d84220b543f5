"""The Dockerfile's defaults build the production image; the image test overrides them."""

from __future__ import annotations

from tests.deploy.image_build import dockerfile_arg_default


def test_defaults_are_the_cuda_image() -> None:
    assert dockerfile_arg_default("BASE_IMAGE") == "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04"
    assert dockerfile_arg_default("TORCH_INDEX_URL") == "https://download.pytorch.org/whl/cu128"
    assert dockerfile_arg_default("TORCH_VERSION") == "2.13.0"
    assert dockerfile_arg_default("APP_UID") == "1000"
    assert dockerfile_arg_default("APP_GID") == "1000"
