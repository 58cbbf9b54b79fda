"""A stream's audio source from its config: the runtime's sources, and ffmpeg for URLs.

`FfmpegSource` runs `ffmpeg -i URL` as a subprocess that writes raw PCM to a pipe; when
ffmpeg exits (the camera rebooted, the network dropped) it is started again after a backoff
that doubles up to `backoff_max` s and starts over once a run lasted `STABLE_RUN` s.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from typing import Callable

from ..errors import UserError
from ..sources import FileSource, MicrophoneSource, StdinSource

CHUNK_QUEUE = 128            # audio chunks held between a source and the scheduler
# Samples a file stream reads and hands over at a time (93 ms at 44.1 kHz): each file stream has
# its own thread, and at 1024 samples 64 streams at 2x real time woke 5,500 times a second,
# contending for the GIL with the scheduler until the engine scored a fifth of what it can
# (bench.serve, 64 streams: 9.5-24 windows/s at 1024, 50 at 4096, as many as 16 streams get).
FILE_BLOCK = 4096
STABLE_RUN = 10.0            # s: an ffmpeg run this long resets the restart backoff


def open_stream_source(s, ffmpeg: str = "ffmpeg"):
    """A `StreamConfig` -> a started-later source (`start`, `read`, `ended`, `stop`, counters)."""
    if s.input == "file":
        return FileSource(s.target, block=FILE_BLOCK, realtime=True, queue_size=CHUNK_QUEUE, speed=s.speed)
    if s.input == "stdin":
        return StdinSource(s.rate, s.channels, s.format, live=True, queue_size=CHUNK_QUEUE)
    if s.input == "device":
        return MicrophoneSource(s.target, rate=s.rate, channels=s.channels, queue_size=CHUNK_QUEUE)
    return FfmpegSource(s.target, s.rate, ffmpeg=ffmpeg)


class FfmpegSource(StdinSource):
    """Audio that ffmpeg reads from `url` (RTSP, HTTP, a file...), as mono s16le at `rate`.

    Never ends by itself: a dead ffmpeg is restarted (counted in `restarts`) until `stop()`.
    """

    def __init__(self, url: str, rate: int, ffmpeg: str = "ffmpeg", backoff: float = 0.5,
                 backoff_max: float = 30.0, log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)):
        exe = shutil.which(ffmpeg)
        if exe is None:
            raise UserError(f"url {url}: network audio needs ffmpeg on the PATH (apt install ffmpeg)")
        super().__init__(rate, 1, "s16le", live=True, queue_size=CHUNK_QUEUE)
        self.url, self.exe, self.backoff, self.backoff_max, self.log = url, exe, backoff, backoff_max, log
        self.restarts = 0
        self._proc = None
        self._stopping = threading.Event()

    def command(self) -> list:
        return [self.exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", self.url,
                "-vn", "-ac", "1", "-ar", str(self.rate), "-f", "s16le", "-"]

    def _reader(self) -> None:
        delay = self.backoff
        while not self._stopping.is_set():
            t0 = time.monotonic()
            try:
                self._proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                              stderr=subprocess.DEVNULL)
            except OSError as e:
                why = f"could not start ({e.strerror})"
            else:
                self._pump(self._proc.stdout)
                why = f"exited with status {self._proc.wait()}"
            if self._stopping.is_set():
                break
            if time.monotonic() - t0 >= STABLE_RUN:
                delay = self.backoff
            self.restarts += 1
            self.log(f"clap-rt serve: ffmpeg for {self.url} {why}; restarting in {delay:.1f} s")
            if self._stopping.wait(delay):
                break
            delay = min(delay * 2, self.backoff_max)
        self.queue.end()

    def stop(self) -> None:
        self._stopping.set()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
        if self._thread is not None:
            self._thread.join(timeout=5)
