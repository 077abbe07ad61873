"""Test-wide settings (headless MuJoCo rendering through EGL unless told otherwise) and a
compiled, signed image of the shipped policy (Loihi 2 target: it carries the Lava core,
the bit-identical ONNX fixed-point graphs and the float graphs), shared by the runtime and
power tests; compiled in-process (the runtime itself never imports the compiler)."""

import os
from pathlib import Path

import pytest

from policies.checkpoint import shipped
from runtime.image import write_image
from runtime.keys import save_keypair

os.environ.setdefault("MUJOCO_GL", "egl")

SHIPPED = shipped("hatch")


@pytest.fixture(scope="session")
def flight_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(image path, public key path)."""
    from compiler.build import CompileOptions, compile_policy
    from runtime.keys import load_private_key

    root = tmp_path_factory.mktemp("flight")
    private, public = save_keypair(root / "flight")
    points = ((None, 2), (None, None), (10, None), (5, None))
    opts = CompileOptions(target="loihi2", operating_points=points, ground_episodes=6)
    result = compile_policy(SHIPPED, opts, load_private_key(private))
    image = write_image(root / "hatch.sfimg", result.image)
    return image, public


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Signed images of a tiny trained policy, one per target (``loihi2``, ``cpu-fixed``,
    ``cpu``), plus ``"key"`` (private) and ``"pub"`` (public key) paths; a few seconds."""
    from tests.fixtures.tiny_policy import compile_tiny, train_tiny

    root = tmp_path_factory.mktemp("tiny-images")
    private, public = save_keypair(root / "tiny")
    run = train_tiny(root / "run", "sdp-sdli")
    out = {"key": private, "pub": public}
    for target in ("loihi2", "cpu-fixed", "cpu"):
        out[target] = write_image(root / f"{target}.sfimg", compile_tiny(run, target, private))
    return out
