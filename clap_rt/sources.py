"""Audio sources for the streaming runtime: microphone, a file played live, raw PCM on stdin.

Every source has `rate` (Hz), `start()`, `read(timeout) -> (k,) float32 mono | None`,
`ended` (no more audio will come), `stop()`, and counters `dropped` (chunks lost because
the bounded queue was full), `overflows` (input overflow flags from the device), `nonfinite`
(NaN / Inf samples, zeroed with one warning: a glitch must not end an always-on stream) and
`max_qsize`. A source whose reader fails (a file damaged half way) raises that error from
read(). Live sources hand chunks from their callback / reader thread to inference
through a `ChunkQueue` of fixed size: when inference is slower than real time the backlog
never grows past it (the runtime also skips whole windows, see `stream.run_stream`).
"""
from __future__ import annotations

import queue
import sys
import threading
import time
from typing import Callable, Iterable, Optional

import numpy as np

from .audio import read_blocks, to_mono
from .errors import UserError

PCM_FORMATS = {"s16le": np.dtype("<i2"), "s32le": np.dtype("<i4"), "f32le": np.dtype("<f4")}
_PCM_SCALE = {"s16le": 1 / 32768.0, "s32le": 1 / 2147483648.0, "f32le": 1.0}
_END = object()


class ChunkQueue:
    """A bounded hand-off from a producer thread (or audio callback) to inference.

    put() never blocks unless `block`: a full queue drops the chunk and counts it. The end
    marker always gets in (it replaces the newest chunk if it must).
    """

    def __init__(self, maxsize: int = 32, block: bool = False):
        if maxsize < 1:
            raise UserError(f"--queue-size: expected an integer >= 1, got {maxsize}")
        self._q: queue.Queue = queue.Queue(maxsize)
        self.block = block
        self.dropped = 0
        self.max_qsize = 0
        self.ended = False

    def put(self, chunk: np.ndarray) -> None:
        if self.block:
            self._q.put(chunk)
        else:
            try:
                self._q.put_nowait(chunk)
            except queue.Full:
                self.dropped += 1
        self.max_qsize = max(self.max_qsize, self._q.qsize())

    def end(self) -> None:
        if self.block:              # a blocking producer waits for room: no chunk is lost
            self._q.put(_END)
            return
        while True:
            try:
                self._q.put_nowait(_END)
                return
            except queue.Full:
                try:
                    self._q.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def get(self, timeout: float) -> Optional[np.ndarray]:
        if self.ended:
            return None
        try:
            item = self._q.get(timeout=timeout) if timeout > 0 else self._q.get_nowait()
        except queue.Empty:
            return None
        if item is _END:
            self.ended = True
            return None
        return item

    def qsize(self) -> int:
        return self._q.qsize()

    @property
    def capacity(self) -> int:
        """The most chunks the queue holds."""
        return self._q.maxsize


class _QueuedSource:
    """Shared plumbing: a ChunkQueue read by inference, counters exposed, non-finite samples
    zeroed (`finite`), a reader thread's error handed to read()."""

    def __init__(self, rate: int, queue_size: int, block: bool = False, name: str = "audio input",
                 log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)):
        self.rate = int(rate)
        self.queue = ChunkQueue(queue_size, block=block)
        self.overflows = 0
        self.nonfinite = 0
        self.name, self.log = name, log
        self.error: Optional[BaseException] = None

    def finite(self, chunk: np.ndarray) -> np.ndarray:
        """(k,) samples with NaN / Inf replaced by 0; the first time, one warning."""
        bad = ~np.isfinite(chunk)
        if bad.any():
            if not self.nonfinite:
                self.log(f"clap-rt listen: warning: {self.name}: NaN/Inf samples replaced by silence "
                         f"(counted in the summary)")
            self.nonfinite += int(bad.sum())
            chunk = np.where(bad, np.float32(0), chunk)
        return chunk

    def read(self, timeout: float = 0.1) -> Optional[np.ndarray]:
        chunk = self.queue.get(timeout)
        if self.error is not None:
            raise self.error
        return chunk

    @property
    def ended(self) -> bool:
        return self.queue.ended

    @property
    def dropped(self) -> int:
        return self.queue.dropped

    @property
    def max_qsize(self) -> int:
        return self.queue.max_qsize

    @property
    def capacity(self) -> int:
        return self.queue.capacity


class BlockSource(_QueuedSource):
    """(k,) float32 mono blocks from an iterator, played as a stream.

    realtime: a thread delivers each block when its audio would have been recorded (a live
    stream; `speed` > 1 plays faster than real time); otherwise read() hands blocks out as fast
    as they are asked for (--fast). Blocks are taken from the iterator as they are played, so
    a file's length does not change the memory held.
    """

    def __init__(self, blocks: Iterable[np.ndarray], rate: int, realtime: bool = False, queue_size: int = 32,
                 speed: float = 1.0, name: str = "audio input"):
        super().__init__(rate, queue_size, name=name)
        if not speed > 0:
            raise UserError(f"speed: expected a playback speed > 0, got {speed}")
        self._blocks = iter(blocks)
        self.realtime, self.speed = realtime, speed
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()

    def start(self) -> None:
        if self.realtime:
            self._thread = threading.Thread(target=self._play, daemon=True)
            self._thread.start()

    def _play(self) -> None:
        try:
            _play_paced((self.finite(b) for b in self._blocks), self.rate * self.speed, self.queue, self._stop)
        except Exception as e:          # handed to the reading thread by read()
            self.error = e
            self.queue.end()

    def read(self, timeout: float = 0.1) -> Optional[np.ndarray]:
        if self.realtime:
            return super().read(timeout)
        if self.queue.ended:
            return None
        b = next(self._blocks, None)
        if b is None:
            self.queue.ended = True
            return None
        return self.finite(b)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class ArraySource(BlockSource):
    """(n,) or (n, channels) samples played as a stream in `block`-sample chunks (see BlockSource)."""

    def __init__(self, samples: np.ndarray, rate: int, block: int = 1024, realtime: bool = False,
                 queue_size: int = 32, speed: float = 1.0):
        x = to_mono(samples)
        super().__init__((x[i:i + block] for i in range(0, x.shape[0], block)), rate, realtime=realtime,
                         queue_size=queue_size, speed=speed)


def _play_paced(blocks, rate: float, q: ChunkQueue, stop: threading.Event) -> None:
    """Put each block into `q` at the wall-clock time its last sample would be recorded."""
    t0, n = time.monotonic(), 0
    for b in blocks:
        n += b.shape[0]
        delay = t0 + n / rate - time.monotonic()
        if stop.wait(max(0.0, delay)):
            break
        q.put(b)
    q.end()


class FileSource(BlockSource):
    """A sound file played as a live stream (real-time pace, or `speed` times it) or as fast as
    possible (--fast), decoded `block` samples at a time at the file's own rate."""

    def __init__(self, path: str, block: int = 1024, realtime: bool = True, queue_size: int = 32,
                 speed: float = 1.0):
        import soundfile as sf
        name = f"--input {path}"
        try:
            rate = sf.info(str(path)).samplerate
        except (FileNotFoundError, sf.LibsndfileError, RuntimeError) as e:
            raise UserError(f"{name}: cannot read audio ({str(e).splitlines()[0]}); expected a sound "
                            f"file readable by libsndfile (wav, flac, ogg, mp3)")
        blocks = read_blocks(path, rate, name=name, block_seconds=block / rate, finite=False)
        super().__init__(blocks, rate, realtime=realtime, queue_size=queue_size, speed=speed, name=name)


class StdinSource(_QueuedSource):
    """Raw interleaved PCM from a binary stream (stdin): --rate, --channels, --format.

    live: a full queue drops chunks (a live pipe must not back up); otherwise the reader
    waits, so piping a file with --fast scores every sample.
    """

    def __init__(self, rate: int, channels: int = 1, fmt: str = "s16le", block: int = 1024,
                 live: bool = True, queue_size: int = 32, stream=None):
        if fmt not in PCM_FORMATS:
            raise UserError(f"--format: expected one of {', '.join(PCM_FORMATS)}, got {fmt!r}")
        if rate is None or rate <= 0:
            raise UserError("--rate: expected the sample rate in Hz of the raw PCM on stdin (e.g. --rate 16000)")
        if channels < 1:
            raise UserError(f"--channels: expected an integer >= 1, got {channels}")
        super().__init__(rate, queue_size, block=not live, name="--input -")
        self.channels, self.fmt, self.block = channels, fmt, block
        self._stream = stream if stream is not None else sys.stdin.buffer
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._reader, daemon=True)
        self._thread.start()

    def _reader(self) -> None:
        try:
            self._pump(self._stream)
        except Exception as e:          # handed to the reading thread by read()
            self.error = e
        self.queue.end()

    def _pump(self, stream) -> None:
        """Read PCM from the binary `stream` into the queue until it ends."""
        dtype = PCM_FORMATS[self.fmt]
        frame_bytes = dtype.itemsize * self.channels
        rest = b""
        while True:
            data = stream.read(self.block * frame_bytes)
            if not data:
                break
            data = rest + data
            usable = len(data) - len(data) % frame_bytes
            rest = data[usable:]
            x = np.frombuffer(data[:usable], dtype=dtype).astype(np.float32) * np.float32(_PCM_SCALE[self.fmt])
            self.queue.put(self.finite(to_mono(x.reshape(-1, self.channels))))

    def stop(self) -> None:
        pass   # the daemon reader ends with stdin; a blocked read() cannot be interrupted


class MicrophoneSource(_QueuedSource):
    """A sounddevice input stream. The device is opened again with backoff if it is lost.

    device: index or name substring (None: the default input); rate None: the device's default.
    """

    def __init__(self, device=None, rate: Optional[int] = None, channels: int = 1, block: int = 1024,
                 queue_size: int = 32, retries: int = 5, backoff: float = 0.5,
                 log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)):
        self.sd = import_sounddevice()
        self.device = _parse_device(device)
        if rate is None:
            try:
                rate = int(self.sd.query_devices(self.device, "input")["default_samplerate"])
            except (ValueError, self.sd.PortAudioError) as e:
                raise UserError(f"--device {device}: no such input device ({e}); see `clap-rt devices`")
        super().__init__(rate, queue_size, name=f"--device {device}" if device is not None else "microphone", log=log)
        self.channels, self.block = channels, block
        self.retries, self.backoff = retries, backoff
        self.reopens = 0
        self._stream = None
        self._stopping = False

    def _callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        self.queue.put(self.finite(to_mono(np.array(indata, dtype=np.float32, copy=True))))

    def _open(self) -> None:
        self._stream = self.sd.InputStream(device=self.device, channels=self.channels, samplerate=self.rate,
                                           blocksize=self.block, dtype="float32", callback=self._callback)
        self._stream.start()

    def start(self) -> None:
        try:
            self._open()
        except self.sd.PortAudioError as e:
            raise UserError(f"--device {self.device}: cannot open the input device ({e}); see `clap-rt devices`")

    def read(self, timeout: float = 0.1) -> Optional[np.ndarray]:
        chunk = super().read(timeout)
        if chunk is None and not self._stopping and self._stream is not None and not self._stream.active:
            self._reopen()
        return chunk

    def _reopen(self) -> None:
        """The stream stopped without us asking (device unplugged): try again with backoff."""
        self._close()
        delay = self.backoff
        for attempt in range(1, self.retries + 1):
            self.log(f"clap-rt listen: audio input device lost; reopening in {delay:.1f} s "
                     f"(attempt {attempt}/{self.retries})")
            time.sleep(delay)
            try:
                self._open()
                self.reopens += 1
                self.log("clap-rt listen: audio input device reopened")
                return
            except self.sd.PortAudioError as e:
                self.log(f"clap-rt listen: reopening failed: {e}")
                delay = min(delay * 2, 8.0)
        self.log(f"clap-rt listen: audio input device lost; giving up after {self.retries} attempts")
        self.queue.end()

    def _close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            except self.sd.PortAudioError:
                pass       # closing a device that is already gone
            self._stream = None

    def stop(self) -> None:
        self._stopping = True
        self._close()


def import_sounddevice():
    try:
        import sounddevice
    except (ImportError, OSError) as e:   # OSError: the PortAudio library itself is missing
        raise RuntimeError(f"microphone input requires the sounddevice package and PortAudio "
                           f"(pip install sounddevice; apt install libportaudio2): {e}") from e
    return sounddevice


def _parse_device(device):
    if device is None:
        return None
    try:
        return int(device)
    except (TypeError, ValueError):
        return device


def open_source(input_path: Optional[str], *, fast: bool = False, device=None, rate: Optional[int] = None,
                channels: int = 1, fmt: str = "s16le", block: int = 1024, queue_size: int = 32):
    """The source `clap-rt listen` asks for: a file, '-' (stdin PCM) or the microphone (None)."""
    if input_path == "-":
        return StdinSource(rate, channels, fmt, block=block, live=not fast, queue_size=queue_size)
    if input_path is not None:
        return FileSource(input_path, block=block, realtime=not fast, queue_size=queue_size)
    return MicrophoneSource(device, rate=rate, channels=channels, block=block, queue_size=queue_size)
