"""Time robosuite's Door scene (Panda, OSC_POSE default controller, 20 Hz) under uniform
random actions; print one JSON object. Standalone on purpose: it runs under any Python
that has robosuite (``spikeflight bench env --robosuite-python PATH``), so robosuite
never has to share spikeflight's virtual environment.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import robosuite

    env = robosuite.make("Door", robots="Panda", has_renderer=False,
                         has_offscreen_renderer=False, use_camera_obs=False, control_freq=20,
                         horizon=10**9)
    low, high = env.action_spec

    def run(steps: int, seed: int) -> float:
        actions = np.random.default_rng(seed).uniform(low, high, size=(steps, low.shape[0]))
        env.reset()
        t0 = time.perf_counter()
        for a in actions:
            env.step(a)
        return steps / (time.perf_counter() - t0)

    run(50, 0)  # warm-up
    runs = [run(args.steps, seed) for seed in range(args.repeats)]
    print(json.dumps({"robosuite": robosuite.__version__, "steps_per_s": runs},
                     allow_nan=False))  # strict JSON (standalone: no tools.json_out)


if __name__ == "__main__":
    main()
