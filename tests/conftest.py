"""Test-wide settings: headless MuJoCo rendering through EGL unless told otherwise."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
