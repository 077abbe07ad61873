"""The flashing tests' provisioned device (tiny policy's cpu-fixed image, confirmed)."""

from tests.tools.conftest import device_storage, fleet  # noqa: F401
