"""clap-rt devices: the audio input devices `listen --device` can use."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("devices", help="list audio input devices for `listen --device`")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import UserError
    from ..sources import import_sounddevice
    try:
        sd = import_sounddevice()
    except RuntimeError as e:
        raise UserError(str(e))
    devices = sd.query_devices()
    try:
        default_in = sd.default.device[0]
    except (TypeError, IndexError):
        default_in = -1
    shown = 0
    for i, d in enumerate(devices):
        if d["max_input_channels"] < 1:
            continue
        mark = "*" if i == default_in else " "
        print(f"{mark} {i:3d}  {d['name']}  ({d['max_input_channels']} ch, {d['default_samplerate']:.0f} Hz)")
        shown += 1
    if not shown:
        print("no audio input devices found")
    return 0
