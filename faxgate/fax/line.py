"""A simulated analogue phone line between two audio endpoints.

`run_call` moves audio between a caller and an answerer in 60 ms blocks for
as long as the call lasts, as fast as the CPU allows, and counts the line
time. It can attenuate the signal and add white noise in both directions.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import Final, Protocol

from faxgate.fax.spandsp import SAMPLE_RATE, AudioBuffer, WhiteNoise, new_audio_buffer

BLOCK_SAMPLES: Final = 480
"""Samples per block: 60 ms at 8 kHz.

Three 20 ms telephony frames per block: the Python loop between spandsp calls
holds the GIL, and with 20 ms blocks two parallel calls spent most of the
second core waiting for it (bench/modem.py: 1.19x, against 1.50x with 60 ms).
T.30 timers are counted in seconds, so the extra 40 ms of turnaround is
harmless.
"""

SETTLE_SECONDS: Final = 2.0
"""Line time one side gets to finish after the other has finished or hung up.

T.30 ends with DCN, after which both sides end within a few tens of ms. A
side still running after this time is hung up, as the network does when the
other party puts the phone down.
"""

TRANSMIT_LEVEL_DBM0: Final = -14.0
"""Power of spandsp's fax modem signals (V.21, V.17), measured on `FaxState.tx` output."""

NOISE_TABLE_SAMPLES: Final = 32771
"""Length of the noise table each direction cycles through: about 4 s, a prime."""


class LineEndpoint(Protocol):
    """Something that talks on the line: a fax terminal or a simulated far end."""

    def tx(self, audio: AudioBuffer, samples: int) -> int:
        """Fill `audio` with up to `samples` samples; return how many were made."""
        ...

    def rx(self, audio: AudioBuffer, samples: int) -> None:
        """Take `samples` samples that arrived from the other end."""
        ...

    def hang_up(self) -> None:
        """Drop the call; `finished` is True afterwards."""
        ...

    @property
    def finished(self) -> bool:
        """True once the endpoint has ended the call or hung up."""
        ...


@dataclass(frozen=True)
class LineImpairment:
    """Loss and white noise added to both directions of the line.

    `snr_db` is the ratio of the attenuated modem signal to the noise, both
    measured over the whole 4 kHz band. The signal leaves the modem at
    -14 dBm0 and loses `loss_db` on the way. The loss matters because
    spandsp 0.0.6 detects carrier at about -43 dBm0: noise near that level
    makes its V.21 receiver flap and the call fails outright, whatever the
    SNR. With 25 dB of loss, a 20 dB SNR puts the noise at -59 dBm0, as on
    a long copper loop.
    """

    snr_db: float
    loss_db: float = 25.0
    seed: int = 1

    @property
    def noise_level_dbm0(self) -> float:
        """Noise power, in dBm0."""
        return TRANSMIT_LEVEL_DBM0 - self.loss_db - self.snr_db


class _ImpairedPath:
    """One direction of an impaired line: attenuation, then added noise."""

    def __init__(self, impairment: LineImpairment, seed: int) -> None:
        generator = WhiteNoise(impairment.noise_level_dbm0, seed)
        try:
            noise = generator.samples(NOISE_TABLE_SAMPLES)
        finally:
            generator.close()
        # The copy of the first block at the end lets every block be one slice.
        self._noise = noise + noise[:BLOCK_SAMPLES]
        self._position = 0
        self._gain = 10.0 ** (-impairment.loss_db / 20.0)

    def carry(self, source: AudioBuffer, target: AudioBuffer, samples: int) -> None:
        start = self._position
        noise = self._noise[start:start + samples]
        self._position = (start + samples) % NOISE_TABLE_SAMPLES
        gain = self._gain
        mixed = [int(x * gain) + n for x, n in zip(source[:samples], noise, strict=True)]
        target[:samples] = [min(32767, max(-32768, v)) for v in mixed]


@dataclass(frozen=True)
class CallOutcome:
    """Line times and end reason of one simulated call."""

    caller_seconds: float
    """Line time from answer until the caller finished or was hung up."""
    line_seconds: float
    """Line time until the line was released."""
    stopped: bool
    """The call was stopped from outside (shutdown or cancellation)."""
    timed_out: bool
    """The call reached the maximum line time."""


def _fill(endpoint: LineEndpoint, audio: AudioBuffer) -> None:
    made = endpoint.tx(audio, BLOCK_SAMPLES)
    if made < BLOCK_SAMPLES:
        ctypes.memset(ctypes.addressof(audio) + 2 * made, 0, 2 * (BLOCK_SAMPLES - made))


def run_call(caller: LineEndpoint, answerer: LineEndpoint, *,
             impairment: LineImpairment | None, max_seconds: float,
             stop: threading.Event) -> CallOutcome:
    """Carry audio between `caller` and `answerer` until both have finished.

    Blocks the calling thread; the spandsp work inside releases the GIL.
    When one side finishes, the other gets SETTLE_SECONDS of line time and
    is then hung up. Both are hung up when `stop` is set or the line time
    reaches `max_seconds`.
    """
    caller_out, answerer_out = new_audio_buffer(BLOCK_SAMPLES), new_audio_buffer(BLOCK_SAMPLES)
    caller_heard, answerer_heard = answerer_out, caller_out
    paths: tuple[_ImpairedPath, _ImpairedPath] | None = None
    if impairment is not None:
        paths = (_ImpairedPath(impairment, impairment.seed),
                 _ImpairedPath(impairment, impairment.seed + 1))
        caller_heard, answerer_heard = (new_audio_buffer(BLOCK_SAMPLES),
                                        new_audio_buffer(BLOCK_SAMPLES))

    limit = int(max_seconds * SAMPLE_RATE)
    settle = int(SETTLE_SECONDS * SAMPLE_RATE)
    samples = 0
    caller_done: int | None = None
    first_done: int | None = None
    stopped = timed_out = False
    while True:
        _fill(caller, caller_out)
        _fill(answerer, answerer_out)
        if paths is not None:
            paths[0].carry(caller_out, answerer_heard, BLOCK_SAMPLES)
            paths[1].carry(answerer_out, caller_heard, BLOCK_SAMPLES)
        caller.rx(caller_heard, BLOCK_SAMPLES)
        answerer.rx(answerer_heard, BLOCK_SAMPLES)
        samples += BLOCK_SAMPLES

        if caller_done is None and caller.finished:
            caller_done = samples
        if first_done is None and (caller.finished or answerer.finished):
            first_done = samples
        if caller.finished and answerer.finished:
            break
        stopped = stop.is_set()
        timed_out = samples >= limit
        settled = first_done is not None and samples - first_done >= settle
        if stopped or timed_out or settled:
            caller.hang_up()
            answerer.hang_up()
            break

    return CallOutcome(caller_seconds=(caller_done or samples) / SAMPLE_RATE,
                       line_seconds=samples / SAMPLE_RATE, stopped=stopped,
                       timed_out=timed_out)
