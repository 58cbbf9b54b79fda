"""listen --caption: each event's end record carries a caption of its strongest window."""
from __future__ import annotations

import json

from clap_rt.cli import main
from test_caption import clapcap_model  # noqa: F401  (fixture)


def test_listen_caption_adds_a_caption_to_end_records(clapcap_model, audio_dir, capsys):
    model_dir, ckpt, _ = clapcap_model
    assert main(["convert", "--from", "msclap-clapcap", str(ckpt), str(model_dir)]) == 0
    capsys.readouterr()
    rc = main(["listen", "--labels", "tone", "--input", str(audio_dir / "long.wav"), "--fast", "--json",
               "--caption", "--on", "0.01", "--off", "0.005", "--model", str(model_dir), "--backend", "torch"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    ev = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in ev] == ["start", "end"], ev
    assert "caption" not in ev[0] and isinstance(ev[1]["caption"], str) and ev[1]["caption"], ev
