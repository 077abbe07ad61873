"""``spikeflight device``: run a device agent, or ask one for its state, confirm its
trial image, roll it back or reset it (mcumgr SMP over ``--link``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from hardware.errors import SpikeflightError
from tools import json_out
from tools.progress import console
from tools.run_cmd import ScreenOpt, WorldModelOpt

app = typer.Typer(no_args_is_help=True,
                  help="Onboard device agent (SMP over serial or UDP) and its management.")
LINK = typer.Option(..., "--link", help="serial:/dev/PATH or udp:HOST:PORT")
TIMEOUT = typer.Option(5.0, "--timeout", min=0.1, help="seconds to wait for each answer")


def _say(text: str) -> None:
    console.print(text, highlight=False, markup=False, soft_wrap=True)


@app.command("serve")
def serve(
    link: str = typer.Option(..., "--link", help="serial:pty (prints the pty path), "
                             "serial:/dev/ttyX or udp:HOST:PORT"),
    storage: Path = typer.Option(..., "--storage", help="the device's storage directory"),
    pubkey: Path = typer.Option(..., "--pubkey", help="the only key images may be signed by"),
    target: str = typer.Option("loihi2", "--target", help="loihi2 | cpu | cpu-fixed"),
    backend: str = typer.Option("auto", "--backend",
                                help="backend the self-test and flight use (auto | onnx | "
                                "lava | onnx-fixed | onnx-float)"),
    slot_size: int = typer.Option(16 * 1024 * 1024, "--slot-size", min=1024,
                                  help="bytes per slot"),
) -> None:
    """Boot the image in slot 0 (MCUboot's test / confirm / revert rules and a golden-vector
    self-test), then answer SMP requests until stopped. Prints 'listening on LINK'."""
    from runtime.backends import BACKENDS
    from runtime.device_agent import DeviceAgent
    from runtime.device_agent import serve as serve_link
    from runtime.device_storage import Storage
    from runtime.image import TARGETS
    from runtime.keys import load_public_key
    from runtime.smp_transport import open_link

    if target not in TARGETS:
        raise SpikeflightError(f"--target must be one of {', '.join(TARGETS)}, got {target!r}")
    if backend not in (*BACKENDS, "auto", "onnx"):
        raise SpikeflightError(f"--backend {backend!r}: choose auto, onnx or one of "
                               f"{', '.join(BACKENDS)}")
    agent = DeviceAgent(Storage(storage, slot_size), load_public_key(pubkey), target, backend)
    try:
        port = open_link(link, lambda why: agent.storage.log("garbage", reason=why))
    except (ValueError, OSError) as exc:
        raise SpikeflightError(str(exc)) from None
    agent.boot()
    print(f"listening on {'serial:' if link.startswith('serial:') else ''}{port.path}",
          flush=True)
    try:
        serve_link(agent, port)
    finally:
        port.close()
        agent.storage.close()


@app.command("fly")
def fly(
    link: str = typer.Option("serial:pty", "--link",
                             help="serial:pty (prints the pty path), serial:/dev/ttyX or "
                             "udp:HOST:PORT"),
    storage: Path = typer.Option(..., "--storage", help="the device's storage directory"),
    pubkey: Path = typer.Option(..., "--pubkey", help="the only key images may be signed by"),
    target: str = typer.Option("loihi2", "--target", help="loihi2 | cpu | cpu-fixed"),
    backend: str = typer.Option("auto", "--backend",
                                help="auto | onnx | lava | onnx-fixed | onnx-float"),
    clock: str = typer.Option("virtual", "--clock", help="virtual | real (the plant's)"),
    budget_w: float | None = typer.Option(None, "--budget-w", help="power budget (W)"),
    window_s: float = typer.Option(2.0, "--window-s", help="power-budget window (s)"),
    deadline_ms: float | None = typer.Option(None, "--deadline-ms",
                                             help="per-chunk deadline (watchdog)"),
    scrub_ticks: int = typer.Option(10, "--scrub-ticks", min=1,
                                    help="weight-memory scrub period (control ticks)"),
    inject_seu_hz: float = typer.Option(0.0, "--inject-seu-hz", min=0.0,
                                        help="test hook: bit flips per second injected into "
                                        "the weight memory"),
    seed: int = typer.Option(0, "--seed", help="seed of the injected upsets"),
    power_trace: Path | None = typer.Option(None, "--power-trace",
                                            help="the governor reads the compute rail from "
                                            "this board trace (CSV t_s, power_w | energy_j), "
                                            "replayed on the mission clock"),
    world_model: WorldModelOpt = True,
    candidates: ScreenOpt = 1,
) -> None:
    """Boot as `serve` does, then fly the confirmed image on a hardware-in-the-loop plant
    over --link (sensor frames in, actuator frames out) until the plant says bye. Prints
    'listening on LINK'; refuses to fly an image that is on trial or did not boot."""
    from hardware.hil.link import listen
    from runtime.device_agent import DEFAULT_SLOT_SIZE, DeviceAgent
    from runtime.device_storage import Storage
    from runtime.flight import FlightConfig
    from runtime.hil_device import serve_hil
    from runtime.keys import load_public_key

    if clock not in ("virtual", "real"):
        raise SpikeflightError(f"--clock must be virtual or real, got {clock!r}")
    cfg = FlightConfig(backend=backend, budget_w=budget_w, window_s=window_s,
                       deadline_ms=deadline_ms, record_phases=False, power_trace=power_trace,
                       world_model=world_model, candidates=candidates)
    agent = DeviceAgent(Storage(storage, DEFAULT_SLOT_SIZE), load_public_key(pubkey), target,
                        backend)
    boot = agent.boot()
    if agent.running is None or boot.get("state") != "confirmed":
        raise SpikeflightError(f"nothing to fly: boot {boot.get('result')}"
                               f"{' (' + boot['state'] + ')' if boot.get('state') else ''}"
                               f"{'; ' + boot['reason'] if boot.get('reason') else ''}; "
                               "flash and confirm an image first")
    port = listen(link)
    print(f"listening on {port.path}", flush=True)
    try:
        serve_hil(agent.running.policy, port, cfg, clock, inject_seu_hz, scrub_ticks, seed)
    finally:
        port.close()
        agent.storage.close()


def _slots_json(slots: dict[int, Any]) -> list[dict[str, Any]]:
    return [{"slot": s.slot, "version": s.version, "hash": s.hash.hex() if s.hash else None,
             "active": bool(s.active), "confirmed": bool(s.confirmed),
             "pending": bool(s.pending), "permanent": bool(s.permanent)}
            for s in sorted(slots.values(), key=lambda s: s.slot)]


def describe(slots: dict[int, Any], rep: Any) -> dict[str, Any]:
    """The device's state as one JSON-able dict."""
    return {"target": rep.target, "backend": rep.backend, "slot_size": rep.slot_size,
            "security_counter": rep.security_counter, "boot": rep.boot,
            "slots": _slots_json(slots), "events": rep.events}


def _print_state(state: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json_out.dumps(state, default=str))
        return
    boot = state["boot"]
    _say(f"target {state['target']}, backend {state['backend']}, slot size "
         f"{state['slot_size']} bytes, security counter {state['security_counter']}")
    line = f"boot: {boot.get('result')}"
    if boot.get("result") == "running":
        st = boot.get("selftest", {})
        line += (f" {boot.get('version')} ({boot.get('state')}), self-test passed on "
                 f"{st.get('backend')} ({st.get('vectors')} golden chunks)")
    if boot.get("reason"):
        line += f"; {boot['reason']}"
    _say(line)
    for s in state["slots"]:
        flags = [f for f in ("active", "confirmed", "pending", "permanent") if s[f]]
        _say(f"slot {s['slot']}: {s['version']}  {(s['hash'] or '')[:16]}  "
             f"{' '.join(flags) or '-'}")
    if not state["slots"]:
        _say("slots: empty")


def _state(link: str, timeout: float, before: Any = None) -> dict[str, Any]:
    from tools import smp_client
    from tools.flash import BOOT_TIMEOUT_S

    async def job(client):
        if before is not None:
            await before(client)
        rep = await smp_client.report(client, timeout_s=BOOT_TIMEOUT_S if before else None)
        return describe(await smp_client.images(client), rep)
    return smp_client.run(link, timeout, job)


@app.command("status")
def status(link: str = LINK, timeout: float = TIMEOUT,
           as_json: bool = typer.Option(False, "--json", help="print one JSON object")) -> None:
    """Slots (version, hash, active / confirmed / pending), the last boot and its self-test,
    the stored security counter and the device's last events."""
    _print_state(_state(link, timeout), as_json)


@app.command("confirm")
def confirm(link: str = LINK, timeout: float = TIMEOUT,
            as_json: bool = typer.Option(False, "--json", help="print one JSON object")) -> None:
    """Confirm the image on trial in slot 0: it stays after resets, and its security
    counter becomes the device's floor."""
    from tools import smp_client

    async def before(client):
        await smp_client.mark(client, None, confirm=True)
    _print_state(_state(link, timeout, before), as_json)


@app.command("rollback")
def rollback(link: str = LINK, timeout: float = TIMEOUT,
             as_json: bool = typer.Option(False, "--json", help="print one JSON object")
             ) -> None:
    """Go back from a trial image to the previous one (a reset without confirming, as
    MCUboot reverts). A confirmed image cannot be rolled back: flash the other one."""
    from tools import smp_client
    from tools.flash import BOOT_TIMEOUT_S

    async def before(client):
        slots = await smp_client.images(client)
        if 0 not in slots or slots[0].confirmed:
            raise SpikeflightError("nothing to roll back: slot 0 is confirmed (flash the "
                                   "image you want instead)" if 0 in slots else
                                   "nothing to roll back: the device has no image")
        await smp_client.reset(client, BOOT_TIMEOUT_S)
    _print_state(_state(link, timeout, before), as_json)


@app.command("reset")
def reset(link: str = LINK, timeout: float = TIMEOUT,
          as_json: bool = typer.Option(False, "--json", help="print one JSON object")) -> None:
    """Reset the device: it boots again (a trial image that was not confirmed reverts)."""
    from tools import smp_client
    from tools.flash import BOOT_TIMEOUT_S

    async def before(client):
        await smp_client.reset(client, BOOT_TIMEOUT_S)
    _print_state(_state(link, timeout, before), as_json)
