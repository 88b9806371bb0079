"""The simulated far ends the loopback trunk connects a call to.

A far end is a `faxgate.fax.line.LineEndpoint`: a fax machine (a real
spandsp T.30 receiver, which may hang up after some pages) or a person who
answers with speech.
"""

from __future__ import annotations

import ctypes
import functools
import math
import random
from typing import Final

from faxgate.fax.result import PHASE_TRANSFERRING, FaxProgress
from faxgate.fax.session import FaxSession, ProgressCallback
from faxgate.fax.spandsp import SAMPLE_RATE, AudioBuffer, new_audio_buffer

_SAMPLE_BYTES: Final = 2


class FarEndFax:
    """A fax machine that receives, optionally hanging up after some pages.

    With `pages_before_hangup` = N it confirms page N, finishes sending that
    confirmation (MCF) and then drops the line. With N = 0 it drops the
    line as soon as it answers.
    """

    def __init__(self, session: FaxSession, pages_before_hangup: int | None) -> None:
        self.session = session
        self._pages_before_hangup = pages_before_hangup
        self._hang_up_pending = pages_before_hangup == 0
        self._sent_since_pending = False
        self.dropped_line = False

    def progress_hook(self, forward: ProgressCallback | None) -> ProgressCallback:
        """Return a progress callback that arms the hang-up, then calls `forward`."""

        def hook(progress: FaxProgress) -> None:
            limit = self._pages_before_hangup
            if (limit is not None and progress.phase == PHASE_TRANSFERRING
                    and progress.pages_done >= limit):
                self._hang_up_pending = True
            if forward is not None:
                forward(progress)

        return hook

    def tx(self, audio: AudioBuffer, samples: int) -> int:
        if self.dropped_line:
            return 0
        if self._hang_up_pending and self._pages_before_hangup == 0:
            self._drop()
            return 0
        made = self.session.tx(audio, samples)
        if self._hang_up_pending:
            self._watch_for_end_of_response(audio, made)
        return made

    def _watch_for_end_of_response(self, audio: AudioBuffer, made: int) -> None:
        # The response to the last page starts after a short silence. The
        # line drops at the first silent block after the response was sent.
        silent = made == 0 or not any(ctypes.string_at(ctypes.addressof(audio),
                                                       made * _SAMPLE_BYTES))
        if not silent:
            self._sent_since_pending = True
        elif self._sent_since_pending:
            self._drop()

    def _drop(self) -> None:
        self.dropped_line = True
        self.session.hang_up()

    def rx(self, audio: AudioBuffer, samples: int) -> None:
        if not self.dropped_line:
            self.session.rx(audio, samples)

    def hang_up(self) -> None:
        if not self.dropped_line:
            self._drop()

    @property
    def finished(self) -> bool:
        return self.dropped_line or self.session.finished


VOICE_SECONDS: Final = 3.0
"""Length of the speech-like clip a voice answerer repeats."""


@functools.cache
def _voice_clip() -> AudioBuffer:
    """Synthesise a speech-like clip: voiced syllables with pauses, no steady tones.

    Each syllable is a harmonic series on a 100-200 Hz fundamental with a
    gliding pitch, shaped by two formants and a raised-cosine envelope.
    Fax tone detectors (CED at 2100 Hz, V.21 at 1650/1850 Hz) need a steady
    tone or FSK frames, which this does not contain. Peak level is about
    -10 dBm0.
    """
    rng = random.Random(20240611)
    total = int(VOICE_SECONDS * SAMPLE_RATE)
    clip = [0.0] * total
    position = int(0.2 * SAMPLE_RATE)
    while position < total:
        length = int(rng.uniform(0.12, 0.3) * SAMPLE_RATE)
        _add_syllable(clip, position, min(length, total - position), rng)
        position += length + int(rng.choice((0.04, 0.06, 0.3, 0.5)) * SAMPLE_RATE)
    audio = new_audio_buffer(total)
    audio[:] = [int(v) for v in clip]
    return audio


def _add_syllable(clip: list[float], start: int, length: int, rng: random.Random) -> None:
    f0_start, f0_end = rng.uniform(100, 200), rng.uniform(100, 200)
    formants = (rng.uniform(300, 900), rng.uniform(900, 2500))
    harmonics = range(1, 16)
    weights = [sum(math.exp(-(((k * f0_start) - f) / 150.0) ** 2) for f in formants) / k
               for k in harmonics]
    phase = 0.0
    for i in range(length):
        f0 = f0_start + (f0_end - f0_start) * i / length
        phase += 2.0 * math.pi * f0 / SAMPLE_RATE
        envelope = 0.5 - 0.5 * math.cos(2.0 * math.pi * i / length)
        value = sum(w * math.sin(k * phase) for k, w in zip(harmonics, weights, strict=True))
        clip[start + i] += 15000.0 * envelope * value


class VoiceAnswerer:
    """A person who answers and keeps talking; it ignores what it hears."""

    def __init__(self) -> None:
        self._clip = _voice_clip()  # shared between calls and never written to
        self._position = 0
        self._hung_up = False

    def tx(self, audio: AudioBuffer, samples: int) -> int:
        if self._hung_up:
            return 0
        end = self._position + samples
        if end > len(self._clip):
            self._position, end = 0, samples
        ctypes.memmove(audio, ctypes.addressof(self._clip) + _SAMPLE_BYTES * self._position,
                       _SAMPLE_BYTES * samples)
        self._position = end
        return samples

    def rx(self, audio: AudioBuffer, samples: int) -> None:
        pass

    def hang_up(self) -> None:
        self._hung_up = True

    @property
    def finished(self) -> bool:
        return self._hung_up
