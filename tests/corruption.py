"""The corruption suite: seeded damage to every kind of file spikeflight reads, and bad
option values, fed through the verbs that read them.

Every case runs one CLI command in a subprocess and is judged on what a user sees:

- refused: exit 2 (1 for ``image verify``), exactly one line on stderr, no traceback;
- accepted: exit 0, which is right only where the damage did not change what the verb
  reads (a flip in an unused HDF5 byte, bytes after a safetensors file's data: checked
  case by case by reading the damaged file back) or the verb does not judge it (``image inspect``
  and ``image verify`` of a re-signed image whose manifest breaks the runtime's contract:
  the signature is valid; ``run`` refuses it);
- no file left behind in the output directory, and an existing output intact;
- no hang (the case's timeout).

``python -m tests.corruption [N] [SEED]`` runs N cases per file kind and prints the counts
per verb (the table in the README); the test suite runs a seeded sample
(``tests/tools/test_corruption.py``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from tests.fixtures.device import SPIKEFLIGHT
from tests.fixtures.resign import resign

TOY = "tests.fixtures.toy_env:make_toy"
TOY_EXPERT = "tests.fixtures.toy_env:ToyExpert"
TIMEOUT_S = 120.0
SENTINEL = b"an existing output that must survive\n"


@dataclass
class Inputs:
    """Intact files to damage: a signed image and its key, a demonstration file, a
    trained checkpoint (toy task), and the private key (to re-sign manifests)."""

    image: Path
    pub: Path
    key: Path
    demos: Path
    run: Path


@dataclass
class Case:
    kind: str  # image | demos | checkpoint | option
    damage: str  # e.g. "flip x2", "truncate", "resigned: no net"
    verb: str  # e.g. "run", "image verify"
    argv: list[str]
    refusal_code: int = 2
    may_accept: bool = False  # exit 0 is right (the damage does not reach what is read)
    out_dir: Path | None = None  # must hold exactly what it held before
    kept: Path | None = None  # an existing output that must stay byte for byte


@dataclass
class Outcome:
    case: Case
    code: int | None
    stderr: str
    seconds: float = 0.0
    left_behind: list[str] = field(default_factory=list)
    kept_intact: bool = True

    @property
    def hang(self) -> bool:
        return self.code is None

    @property
    def traceback(self) -> bool:
        return "Traceback" in self.stderr

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.stderr.strip().splitlines() if ln.strip()]

    @property
    def verdict(self) -> str:
        """``refused`` | ``accepted`` | ``wrongly accepted`` | ``bad refusal`` | ``hang``."""
        if self.hang:
            return "hang"
        if self.code == 0:
            return "accepted" if self.case.may_accept else "wrongly accepted"
        one = len(self.lines) == 1 and not self.traceback
        return "refused" if self.code == self.case.refusal_code and one else "bad refusal"

    @property
    def ok(self) -> bool:
        return (self.verdict in ("refused", "accepted") and not self.left_behind
                and self.kept_intact)


# --- damage -------------------------------------------------------------------------------

def flip(data: bytes, rng: np.random.Generator, n: int) -> bytes:
    out = bytearray(data)
    for pos in rng.choice(len(out), size=n, replace=False):
        out[pos] ^= int(rng.integers(1, 256))
    return bytes(out)


def truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[:int(rng.integers(0, len(data)))]


def append(data: bytes, rng: np.random.Generator) -> bytes:
    return data + rng.bytes(int(rng.integers(1, 257)))


def byte_damage(rng: np.random.Generator, count: int) -> list[tuple[str, Callable]]:
    """``count`` seeded byte-level damages: flips of 1-4 bytes, truncations, garbage."""
    out: list[tuple[str, Callable]] = []
    for i in range(count):
        seed = int(rng.integers(1 << 31))
        r = np.random.default_rng(seed)
        if i % 3 == 0:
            n = int(r.integers(1, 5))
            out.append((f"flip x{n} #{seed}", lambda d, r=r, n=n: flip(d, r, n)))
        elif i % 3 == 1:
            out.append((f"truncate #{seed}", lambda d, r=r: truncate(d, r)))
        else:
            out.append((f"append #{seed}", lambda d, r=r: append(d, r)))
    return out


MANIFEST_EDITS: list[tuple[str, Callable[[dict], None]]] = [
    ("no net", lambda m: m.pop("net")),
    ("no policy", lambda m: m.pop("policy")),
    ("policy a string", lambda m: m.__setitem__("policy", "x")),
    ("net.micro_steps -1", lambda m: m["net"].__setitem__("micro_steps", -1)),
    ("net.beta_lif a string", lambda m: m["net"].__setitem__("beta_lif", "0.9")),
    ("policy.chunk 0", lambda m: m["policy"].__setitem__("chunk", 0)),
    ("policy.prediction unknown", lambda m: m["policy"].__setitem__("prediction", "z")),
    ("operating point replan 0",
     lambda m: m["operating_points"][0].__setitem__("replan", 0)),
    ("operating points a dict", lambda m: m.__setitem__("operating_points", {"a": 1})),
    ("task missing", lambda m: m.pop("task")),
    ("core missing", lambda m: m.pop("core", None) if "core" in m else m.pop("net")),
]


def _h5_edit(fn: Callable[[h5py.File], None]) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        with h5py.File(path, "r+") as fh:
            fn(fh)
    return edit


def _replace(group: h5py.Group, name: str, data: np.ndarray) -> None:
    del group[name]
    group.create_dataset(name, data=data)


HDF5_EDITS: list[tuple[str, Callable[[Path], None]]] = [
    ("no actions", _h5_edit(lambda f: f["data/demo_0"].__delitem__("actions"))),
    ("no obs field", _h5_edit(lambda f: f["data/demo_1/obs"].__delitem__(
        next(iter(f["data/demo_1/obs"]))))),
    ("actions as strings", _h5_edit(lambda f: _replace(
        f["data/demo_0"], "actions", np.array([b"x"] * len(f["data/demo_0/actions"]))))),
    ("actions 1-D", _h5_edit(lambda f: _replace(
        f["data/demo_0"], "actions", f["data/demo_0/actions"][:, 0]))),
    ("actions one row short", _h5_edit(lambda f: _replace(
        f["data/demo_0"], "actions", f["data/demo_0/actions"][:-1]))),
    ("NaN action", _h5_edit(lambda f: f["data/demo_0/actions"].__setitem__(
        (0, 0), np.nan))),
    ("action 1e308", _h5_edit(lambda f: f["data/demo_0/actions"].__setitem__(
        (0, 0), 1e308))),
    ("env_args not JSON", _h5_edit(lambda f: f["data"].attrs.__setitem__("env_args", "{"))),
    ("no env_args", _h5_edit(lambda f: f["data"].attrs.__delitem__("env_args"))),
    ("obs_keys not a list", _h5_edit(lambda f: f["data"].attrs.__setitem__(
        "env_args", json.dumps({**json.loads(f["data"].attrs["env_args"]),
                                "obs_keys": "obs"})))),
    ("no demos", _h5_edit(lambda f: [f["data"].__delitem__(k) for k in list(f["data"])])),
    ("phases of another length", _h5_edit(lambda f: f["data/demo_0"].create_dataset(
        "phases", data=np.zeros(3, np.int16)))),
]

REPORTED_EDITS = ("NaN action", "action 1e308")

CONFIG_EDITS: list[tuple[str, Callable[[dict], object]]] = [
    ("no policy", lambda c: c.pop("policy")),
    ("no obs_dim", lambda c: c["policy"].pop("obs_dim")),
    ("kind lstm", lambda c: c["policy"].__setitem__("kind", "lstm")),
    ("reset subtract", lambda c: c["policy"].__setitem__("reset", "subtract")),
    ("micro_steps 1", lambda c: c["policy"].__setitem__("micro_steps", 1)),
    ("hidden [0]", lambda c: c["policy"].__setitem__("hidden", [0])),
    ("lif_beta NaN", lambda c: c["policy"].__setitem__("lif_beta", float("nan"))),
    ("format other", lambda c: c.__setitem__("format", "other/1")),
    ("a list", lambda c: None),  # replaced by a list below
]


# --- cases --------------------------------------------------------------------------------

def _outputs(work: Path, prefix: str, damage: str, kept_name: str) -> tuple[Path, Path]:
    """A case's output directory holding one existing output (``SENTINEL``)."""
    out = work / f"{prefix}-{hashlib.sha1(damage.encode()).hexdigest()[:8]}"
    out.mkdir(exist_ok=True)
    kept = out / kept_name
    kept.write_bytes(SENTINEL)
    return out, kept


def _image_verbs(path: Path, inp: Inputs, damage: str, resigned: bool,
                 work: Path) -> list[Case]:
    out, kept = _outputs(work, "out", damage, "existing.csv")
    common = dict(kind="image", damage=damage)
    return [
        Case(verb="image verify", argv=["image", "verify", str(path), "--pubkey", str(inp.pub)],
             refusal_code=1, may_accept=resigned, **common),
        Case(verb="image inspect", argv=["image", "inspect", str(path)], may_accept=resigned,
             **common),
        Case(verb="run", argv=["run", str(path), "--pubkey", str(inp.pub), "-n", "1",
                               "--backend", "onnx-fixed"], **common),
        Case(verb="power profile", argv=["power", "profile", str(path), "--pubkey",
                                         str(inp.pub), "-n", "1", "--csv", str(kept),
                                         "--json", str(out / "p.json")],
             out_dir=out, kept=kept, **common),
    ]


def _demo_verbs(path: Path, damage: str, harmless: bool, work: Path) -> list[Case]:
    out = work / f"train-{hashlib.sha1(damage.encode()).hexdigest()[:8]}"
    common = dict(kind="demos", damage=damage, may_accept=harmless)
    return [
        Case(verb="data info", argv=["data", "info", str(path), "--json"], **common),
        Case(verb="train bc", argv=["train", "bc", "--task", TOY, "--demos", str(path), "-o",
                                    str(out / "run"), "-n", "2", "--threads", "1",
                                    "--hidden", "8,8", "--batch-size", "4"],
             out_dir=out, **common),
    ]


def _checkpoint_verbs(run: Path, inp: Inputs, damage: str, work: Path,
                      compile_too: bool, harmless: bool = False) -> list[Case]:
    out, kept = _outputs(work, "ckpt", damage, "existing.sfimg")
    common = dict(kind="checkpoint", damage=damage, may_accept=harmless)
    cases = [Case(verb="eval", argv=["eval", str(run), "--episodes", "1", "--json"],
                  **common)]
    if compile_too:
        cases.append(Case(verb="compile", argv=["compile", str(run), "-k", str(inp.key),
                                                "--target", "cpu", "-o", str(kept)],
                          out_dir=out, kept=kept, **common))
    return cases


OPTION_CASES: list[tuple[str, list[str]]] = [
    ("run", ["run", "{image}", "--pubkey", "{pub}", "-n", "0"]),
    ("run", ["run", "{image}", "--pubkey", "{pub}", "--budget-w", "nan"]),
    ("run", ["run", "{image}", "--pubkey", "{pub}", "--screen", "-3"]),
    ("run", ["run", "{image}", "--pubkey", "{pub}", "--backend", "gpu"]),
    ("run", ["run", "{image}", "--pubkey", "{pub}", "--deadline-ms", "inf"]),
    ("power profile", ["power", "profile", "{image}", "--pubkey", "{pub}", "--sample-ms",
                       "-1"]),
    ("power profile", ["power", "profile", "{image}", "--pubkey", "{pub}", "--csv", "/"]),
    ("train bc", ["train", "bc", "--task", TOY, "--demos", "{demos}", "-o", "{work}/o1",
                  "--lr", "nan"]),
    ("train bc", ["train", "bc", "--task", TOY, "--demos", "{demos}", "-o", "{work}/o2",
                  "--hidden", "0"]),
    ("train bc", ["train", "bc", "--task", TOY, "--demos", "{demos}", "-o", "{work}/o3",
                  "-T", "1"]),
    ("train bc", ["train", "bc", "--task", TOY, "--demos", "{demos}", "-o", "{work}/o4",
                  "--iterations", "abc"]),
    ("train bc", ["train", "bc", "--task", TOY, "--demos", "{demos}", "-o", "{work}/o5",
                  "--obs-keys", ",,"]),
    ("eval", ["eval", "{run}", "--episodes", "-1"]),
    ("eval", ["eval", "{run}", "--execute", "0"]),
    ("data info", ["data", "info", "{demos}", "--obs-keys", "nope"]),
    ("data collect", ["data", "collect", "--task", TOY, "--expert", TOY_EXPERT, "-n", "0",
                      "-o", "{work}/c.hdf5"]),
    ("data collect", ["data", "collect", "--task", TOY, "--expert", TOY_EXPERT, "--noise",
                      "nan", "-o", "{work}/c.hdf5"]),
    ("compile", ["compile", "{run}", "-k", "{key}", "--target", "tpu", "-o",
                 "{work}/x.sfimg"]),
    ("image verify", ["image", "verify", "{image}", "--pubkey", "{demos}"]),
]


def build_cases(inp: Inputs, work: Path, per_kind: int, seed: int,
                compile_too: bool = False) -> list[Case]:
    """Every case of a run: ``per_kind`` byte damages of each file kind, every structural
    edit, and every bad option value; files are written under ``work``."""
    rng = np.random.default_rng(seed)
    cases: list[Case] = []
    image = inp.image.read_bytes()
    for i, (name, fn) in enumerate(byte_damage(rng, per_kind)):
        path = work / f"image-{i}.sfimg"
        path.write_bytes(fn(image))
        cases += _image_verbs(path, inp, name, False, work)
    from runtime.image import read_image

    manifest = read_image(image).manifest
    for i, (name, edit) in enumerate(MANIFEST_EDITS):
        m = json.loads(json.dumps(manifest))
        edit(m)
        path = work / f"resigned-{i}.sfimg"
        path.write_bytes(resign(image, inp.key, manifest=m))
        cases += _image_verbs(path, inp, f"resigned: {name}", True, work)
    demos = inp.demos.read_bytes()
    original = _demo_fingerprint(inp.demos)
    for i, (name, fn) in enumerate(byte_damage(rng, per_kind)):
        path = work / f"demos-{i}.hdf5"
        path.write_bytes(fn(demos))
        cases += _demo_verbs(path, name, _demo_fingerprint(path) == original, work)
    for i, (name, edit) in enumerate(HDF5_EDITS):
        path = work / f"edited-{i}.hdf5"
        shutil.copyfile(inp.demos, path)
        edit(path)
        info, train = _demo_verbs(path, f"edit: {name}", False, work)
        info.may_accept = name in REPORTED_EDITS  # data info shows them; training refuses
        cases += [info, train]
    weights = (inp.run / "policy.safetensors").read_bytes()
    config = json.loads((inp.run / "config.json").read_text())
    for i, (name, fn) in enumerate(byte_damage(rng, per_kind)):
        run = work / f"run-w{i}"
        shutil.copytree(inp.run, run)
        (run / "policy.safetensors").write_bytes(fn(weights))
        same = _weights_fingerprint(run) == _weights_fingerprint(inp.run)
        cases += _checkpoint_verbs(run, inp, f"weights {name}", work, compile_too, same)
        run = work / f"run-c{i}"
        shutil.copytree(inp.run, run)
        (run / "config.json").write_bytes(fn((inp.run / "config.json").read_bytes()))
        cases += _checkpoint_verbs(run, inp, f"config {name}", work, compile_too)
    for i, (name, edit) in enumerate(CONFIG_EDITS):
        run = work / f"run-e{i}"
        shutil.copytree(inp.run, run)
        c = json.loads(json.dumps(config))
        edit(c)
        (run / "config.json").write_text(json.dumps([c] if name == "a list" else c))
        cases += _checkpoint_verbs(run, inp, f"config edit: {name}", work, compile_too)
    fill = {"image": inp.image, "pub": inp.pub, "key": inp.key, "demos": inp.demos,
            "run": inp.run, "work": work}
    for verb, argv in OPTION_CASES:
        cases.append(Case(kind="option", damage=" ".join(argv[-2:]), verb=verb,
                          argv=[a.format(**fill) for a in argv]))
    return cases


def _weights_fingerprint(run: Path) -> str | None:
    """The digest of the tensors a loader reads (None if the file does not load): bytes
    appended after a safetensors file's data, for one, are never read."""
    from policies.checkpoint import CheckpointError, load_weights, tensor_digest

    try:
        return tensor_digest(load_weights(run))
    except CheckpointError:
        return None


def _demo_fingerprint(path: Path) -> str | None:
    """A digest of everything the readers take from a demonstration file (None if it
    does not read): equal digests mean the damage did not reach the data."""
    from hardware.errors import SpikeflightError
    from hardware.sim.dataset import read_episodes

    try:
        episodes = read_episodes(path, strict=False)
    except (SpikeflightError, OSError, ValueError, KeyError):
        return None
    h = hashlib.sha256()
    for ep in episodes:
        for arr in (*ep.obs.values(), ep.actions, ep.rewards, ep.dones):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update(repr((ep.seed, ep.success, sorted(map(repr, ep.provenance.items())))).encode())
    return h.hexdigest()


# --- running ------------------------------------------------------------------------------

def _listing(path: Path | None) -> set[str]:
    if path is None or not path.exists():
        return set()
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def run_case(case: Case) -> Outcome:
    import time

    before = _listing(case.out_dir)
    t0 = time.monotonic()
    try:
        res = subprocess.run([SPIKEFLIGHT, *case.argv], capture_output=True, text=True,
                             timeout=TIMEOUT_S)
        code, err = res.returncode, res.stderr
    except subprocess.TimeoutExpired as exc:
        code, err = None, (exc.stderr or b"").decode(errors="replace") \
            if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    seconds = time.monotonic() - t0
    left = sorted(_listing(case.out_dir) - before) if code != 0 else []
    kept = case.kept is None or code == 0 or case.kept.read_bytes() == SENTINEL
    return Outcome(case, code, err, seconds, left, kept)


def make_inputs(root: Path, image: Path, pub: Path, key: Path) -> Inputs:
    """Intact inputs under ``root``: the given image and keys, a toy demonstration file
    and a toy checkpoint trained from it."""
    demos = root / "toy.hdf5"
    run = root / "toy-run"
    for argv in (["data", "collect", "--task", TOY, "--expert", TOY_EXPERT, "-n", "6",
                  "-o", str(demos)],
                 ["train", "bc", "--task", TOY, "--demos", str(demos), "-o", str(run),
                  "-n", "3", "--threads", "1", "--hidden", "8,8", "--batch-size", "4"]):
        res = subprocess.run([SPIKEFLIGHT, *argv], capture_output=True, text=True,
                             timeout=TIMEOUT_S)
        assert res.returncode == 0, res.stderr
    return Inputs(image=image, pub=pub, key=key, demos=demos, run=run)


def table(outcomes: list[Outcome]) -> str:
    """Counts per verb, as Markdown."""
    rows = Counter()
    verbs = sorted({o.case.verb for o in outcomes})
    keys = ("cases", "refused", "accepted", "wrongly accepted", "bad refusal", "traceback",
            "left behind", "output damaged", "hang")
    for o in outcomes:
        v = o.case.verb
        rows[v, "cases"] += 1
        rows[v, o.verdict] += 1
        rows[v, "traceback"] += o.traceback
        rows[v, "left behind"] += bool(o.left_behind)
        rows[v, "output damaged"] += not o.kept_intact
    lines = ["| verb | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for v in [*verbs, "all"]:
        pick = verbs if v == "all" else [v]
        lines.append(f"| {v} | " + " | ".join(str(sum(rows[p, k] for p in pick))
                                             for k in keys) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from runtime.keys import save_keypair
    from tests.fixtures.tiny_policy import compile_tiny, train_tiny

    per_kind = int(argv[0]) if argv else 30
    seed = int(argv[1]) if len(argv) > 1 else 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        key, pub = save_keypair(root / "k")
        image = root / "tiny.sfimg"
        image.write_bytes(compile_tiny(train_tiny(root / "tiny", "sdp-sdli"), "cpu-fixed", key))
        inp = make_inputs(root, image, pub, key)
        work = root / "work"
        work.mkdir()
        cases = build_cases(inp, work, per_kind, seed, compile_too=True)
        print(f"{len(cases)} cases", file=sys.stderr)
        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(run_case, cases))
    print(table(outcomes))
    bad = [o for o in outcomes if not o.ok]
    for o in bad:
        print(f"- {o.case.verb} / {o.case.damage}: {o.verdict}, code {o.code}, "
              f"left {o.left_behind}, kept {o.kept_intact}: {o.lines[-1:] or ''}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
