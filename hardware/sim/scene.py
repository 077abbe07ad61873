"""MJCF assembly for the zero-g cabin: the shared cabin shell, the free-flying gripper,
and the task's own bodies, combined into one MuJoCo model.

Physics conventions (all tasks):
- ``gravity = 0``, ``density = 0``, ``viscosity = 0``: nothing slows a body but contact
  and joint friction, so a pushed object drifts and tumbles at constant momentum.
- timestep 5 ms, ``implicitfast`` integrator, elliptic friction cones; one control step
  (50 ms, 20 Hz) is 10 physics steps.
- The gripper is a free body (1.0 kg) tethered to a mocap target by a soft weld
  constraint (``solref = (0.02 s, 1.0)``): a critically damped spring-damper with a time
  constant of 20 ms, i.e. a compliant pose controller with finite gains. Contacts push
  back against that spring, so a hard shove moves the object rather than the gripper.
- Grasp is modelled as a weld between the gripper and a task body that engages when the
  gripper closes on a handle within the position and angle tolerance of a valid grasp
  (``hardware.sim.grasp``) and holds it at the canonical grasp pose; it releases when the
  gripper is commanded open. Fingers are visual only (they do not collide); the palm
  collides.
"""

from __future__ import annotations

from dataclasses import dataclass

from hardware.sim.grasp import Grasp

TIMESTEP_S = 0.005
CONTROL_HZ = 20
SUBSTEPS = round(1.0 / (CONTROL_HZ * TIMESTEP_S))
FINGER_OPEN_M = 0.04
GRIP_OFFSET_M = 0.07  # grip point below the palm centre, along the gripper's -z axis


@dataclass
class TaskScene:
    """The task-specific part of a cabin scene.

    ``bodies``: MJCF placed in the worldbody (static fixtures and movable objects).
    ``equality``: extra MJCF equality constraints (e.g. a hinge lock).
    ``extra``: MJCF placed at the top level (contact excludes, sensors...).
    ``gripper_pos``, ``gripper_quat``: nominal start pose of the gripper (m, wxyz).
    """

    bodies: str
    extra: str = ""
    equality: str = ""
    gripper_pos: tuple[float, float, float] = (0.0, 0.0, 0.5)
    gripper_quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    camera_pos: tuple[float, float, float] = (0.9, -0.9, 0.9)
    camera_target: tuple[float, float, float] = (0.0, 0.0, 0.4)


def _vec(v: tuple[float, ...]) -> str:
    return " ".join(f"{x:g}" for x in v)


def _camera_xyaxes(pos: tuple[float, float, float], target: tuple[float, float, float]) -> str:
    """Camera axes looking from ``pos`` at ``target`` with world z up (MJCF ``xyaxes``)."""
    import numpy as np

    fwd = np.asarray(target, float) - np.asarray(pos, float)
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    return _vec(tuple(right) + tuple(up))


def build_mjcf(name: str, scene: TaskScene, grasps: tuple[Grasp, ...] = ()) -> str:
    """Return the full MJCF document of cabin task ``name``; one (inactive) weld per
    grasp lets the gripper hold that body."""
    welds = "\n".join(
        f'    <weld name="grasp_{g.body}" body1="gripper" body2="{g.body}" active="false" '
        f'solref="0.01 1"/>'
        for g in grasps
    )
    return f"""<mujoco model="cabin-{name}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{TIMESTEP_S}" gravity="0 0 0" density="0" viscosity="0"
          integrator="implicitfast" cone="elliptic"/>
  <visual>
    <global offwidth="640" offheight="480"/>
    <quality shadowsize="1024"/>
  </visual>
  <default>
    <geom solref="0.005 1" solimp="0.95 0.99 0.001" condim="4"/>
    <default class="decor"><geom contype="0" conaffinity="0" group="2"/></default>
  </default>
  <asset>
    <texture type="skybox" builtin="gradient" rgb1=".35 .4 .48" rgb2=".05 .06 .08" width="32"
             height="512"/>
    <texture name="wall" type="2d" builtin="checker" rgb1=".78 .8 .82" rgb2=".7 .72 .75"
             width="256" height="256"/>
    <material name="wall" texture="wall" texrepeat="6 6"/>
    <material name="metal" rgba=".6 .62 .66 1"/>
    <material name="accent" rgba=".95 .55 .1 1"/>
    <material name="gripper" rgba=".2 .25 .3 1"/>
  </asset>
  <worldbody>
    <light pos="0 0 2.5" dir="0 0 -1" diffuse=".8 .8 .8"/>
    <light pos="1.5 -1.5 2" dir="-1 1 -1" diffuse=".4 .4 .4"/>
    <camera name="overview" pos="{_vec(scene.camera_pos)}"
            xyaxes="{_camera_xyaxes(scene.camera_pos, scene.camera_target)}"/>
    <geom name="cabin_floor" type="plane" size="1.5 1.5 .05" pos="0 0 -0.3" material="wall"/>
    <body name="target" mocap="true" pos="{_vec(scene.gripper_pos)}"
          quat="{_vec(scene.gripper_quat)}">
      <site name="target" size="0.008" rgba="0 1 0 0.3"/>
    </body>
    <body name="gripper" pos="{_vec(scene.gripper_pos)}" quat="{_vec(scene.gripper_quat)}">
      <freejoint name="gripper"/>
      <inertial pos="0 0 0" mass="1.0" diaginertia="0.004 0.004 0.004"/>
      <geom name="palm" type="box" size="0.035 0.02 0.015" material="gripper"/>
      <geom name="wrist" type="cylinder" size="0.02 0.04" pos="0 0 0.055" material="gripper"
            contype="0" conaffinity="0"/>
      <site name="grip" pos="0 0 -{GRIP_OFFSET_M}" size="0.006" rgba="1 0 0 0.6"/>
      <body name="finger_l" pos="0 0 -0.045">
        <joint name="finger_l" type="slide" axis="1 0 0" range="0 {FINGER_OPEN_M}"
               damping="2"/>
        <geom class="decor" type="box" size="0.006 0.012 0.03" pos="0.006 0 0"
              material="metal" mass="0.02"/>
      </body>
      <body name="finger_r" pos="0 0 -0.045">
        <joint name="finger_r" type="slide" axis="-1 0 0" range="0 {FINGER_OPEN_M}"
               damping="2"/>
        <geom class="decor" type="box" size="0.006 0.012 0.03" pos="-0.006 0 0"
              material="metal" mass="0.02"/>
      </body>
    </body>
{scene.bodies}
  </worldbody>
  <equality>
    <weld name="drive" body1="target" body2="gripper" solref="0.02 1"
          solimp="0.9 0.95 0.001"/>
    <joint joint1="finger_l" joint2="finger_r"/>
{welds}
{scene.equality}
  </equality>
  <actuator>
    <position name="fingers" joint="finger_l" kp="40" ctrlrange="0 {FINGER_OPEN_M}"/>
  </actuator>
{scene.extra}
</mujoco>
"""
