"""A typed ctypes binding over the parts of spandsp 0.0.6 that the fax engine uses.

spandsp is loaded from the shared library of the Debian package `libspandsp2`
at import time, so a missing library fails here with one line that names the
package. Only the runtime library is needed: the prototypes below are written
against the 0.0.6 headers (`fax.h`, `t30.h`, `t30_api.h`, `t30_logging.h`,
`logging.h`, `awgn.h`), and the `t30_stats_t` layout was checked against them
with a C program (15 ints, 60 bytes).

ctypes releases the GIL for the duration of every foreign call, so several
calls can run their modems on several cores. The callbacks (phase B, D and E,
and the log handler) take the GIL again while they run.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable
from enum import IntEnum, IntFlag
from typing import Final

from faxgate.fax.limits import MAX_IDENT_LENGTH, MAX_PAGE_HEADER_LENGTH

logger = logging.getLogger(__name__)

LIBRARY_NAME: Final = "libspandsp.so.2"
DEBIAN_PACKAGE: Final = "libspandsp2"

SAMPLE_RATE: Final = 8000
"""Audio sample rate of every spandsp modem, in samples per second."""



def _load_library() -> ctypes.CDLL:
    try:
        return ctypes.CDLL(LIBRARY_NAME)
    except OSError as exc:
        raise ImportError(
            f"cannot load {LIBRARY_NAME} ({exc}); install the Debian package "
            f"{DEBIAN_PACKAGE}: apt-get install {DEBIAN_PACKAGE}"
        ) from None


_lib = _load_library()


class T30Error(IntEnum):
    """T.30 completion codes reported at phase E (the `T30_ERR_*` enum of t30.h)."""

    OK = 0
    CEDTONE = 1
    T0_EXPIRED = 2
    T1_EXPIRED = 3
    T3_EXPIRED = 4
    HDLC_CARRIER = 5
    CANNOT_TRAIN = 6
    OPER_INT_FAIL = 7
    INCOMPATIBLE = 8
    RX_INCAPABLE = 9
    TX_INCAPABLE = 10
    NORESSUPPORT = 11
    NOSIZESUPPORT = 12
    UNEXPECTED = 13
    TX_BADDCS = 14
    TX_BADPG = 15
    TX_ECMPHD = 16
    TX_GOTDCN = 17
    TX_INVALRSP = 18
    TX_NODIS = 19
    TX_PHBDEAD = 20
    TX_PHDDEAD = 21
    TX_T5EXP = 22
    RX_ECMPHD = 23
    RX_GOTDCS = 24
    RX_INVALCMD = 25
    RX_NOCARRIER = 26
    RX_NOEOL = 27
    RX_NOFAX = 28
    RX_T2EXPDCN = 29
    RX_T2EXPD = 30
    RX_T2EXPFAX = 31
    RX_T2EXPMPS = 32
    RX_T2EXPRR = 33
    RX_T2EXP = 34
    RX_DCNWHY = 35
    RX_DCNDATA = 36
    RX_DCNFAX = 37
    RX_DCNPHD = 38
    RX_DCNRRD = 39
    RX_DCNNORTN = 40
    FILEERROR = 41
    NOPAGE = 42
    BADTIFF = 43
    BADPAGE = 44
    BADTAG = 45
    BADTIFFHDR = 46
    NOMEM = 47
    RETRYDCN = 48
    CALLDROPPED = 49


class Modem(IntFlag):
    """Image modems for `T30.set_supported_modems` (`T30_SUPPORT_*` in t30.h)."""

    V27TER = 0x01
    V29 = 0x02
    V17 = 0x04


class Compression(IntFlag):
    """Image codings for `T30.set_supported_compressions` (`T30_SUPPORT_*` in t30.h)."""

    T4_1D = 0x02
    T4_2D = 0x04
    T6 = 0x08


class Encoding(IntEnum):
    """Image coding of a transfer, as `T30Stats.encoding` reports it (t4_rx.h)."""

    NONE = 0
    T4_1D = 1
    T4_2D = 2
    T6 = 3


class LogLevel(IntEnum):
    """spandsp log severities (logging.h); a state logs its level and everything below."""

    NONE = 0
    ERROR = 1
    WARNING = 2
    PROTOCOL_ERROR = 3
    PROTOCOL_WARNING = 4
    FLOW = 5


_LOG_SHOW_TAG = 0x2000
_LOG_SHOW_PROTOCOL = 0x0800


class T30Stats(ctypes.Structure):
    """`t30_stats_t` of spandsp 0.0.6: the transfer statistics of one T.30 context.

    Resolutions are in pixels per metre; `length`, `bad_rows` and the
    resolutions describe the most recent page.
    """

    _fields_ = (
        ("bit_rate", ctypes.c_int),
        ("error_correcting_mode", ctypes.c_int),
        ("pages_tx", ctypes.c_int),
        ("pages_rx", ctypes.c_int),
        ("pages_in_file", ctypes.c_int),
        ("x_resolution", ctypes.c_int),
        ("y_resolution", ctypes.c_int),
        ("width", ctypes.c_int),
        ("length", ctypes.c_int),
        ("image_size", ctypes.c_int),
        ("encoding", ctypes.c_int),
        ("bad_rows", ctypes.c_int),
        ("longest_bad_row_run", ctypes.c_int),
        ("error_correcting_mode_retries", ctypes.c_int),
        ("current_status", ctypes.c_int),
    )

    # Declared for mypy, which cannot see fields created from _fields_.
    bit_rate: int
    error_correcting_mode: int
    pages_tx: int
    pages_rx: int
    pages_in_file: int
    x_resolution: int
    y_resolution: int
    width: int
    length: int
    image_size: int
    encoding: int
    bad_rows: int
    longest_bad_row_run: int
    error_correcting_mode_retries: int
    current_status: int


assert ctypes.sizeof(T30Stats) == 60, "t30_stats_t of spandsp 0.0.6 is 60 bytes"

AudioBuffer = ctypes.Array[ctypes.c_int16]
"""A block of 16-bit linear audio samples at 8 kHz."""

PhaseHandler = Callable[[int], None]
"""A phase B, D or E callback. Its argument is the frame type (B, D) or the completion code (E)."""

_void_p = ctypes.c_void_p
_int16_p = ctypes.POINTER(ctypes.c_int16)
_PHASE_BD_FUNC = ctypes.CFUNCTYPE(ctypes.c_int, _void_p, _void_p, ctypes.c_int)
_PHASE_E_FUNC = ctypes.CFUNCTYPE(None, _void_p, _void_p, ctypes.c_int)
_MESSAGE_FUNC = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p)


def _declare(name: str, restype: object, *argtypes: object) -> None:
    try:
        function = getattr(_lib, name)
    except AttributeError:
        raise ImportError(
            f"{LIBRARY_NAME} has no function {name}; faxgate needs spandsp 0.0.6 "
            f"(Debian package {DEBIAN_PACKAGE})"
        ) from None
    function.restype = restype
    function.argtypes = argtypes


_declare("fax_init", _void_p, _void_p, ctypes.c_int)
_declare("fax_free", ctypes.c_int, _void_p)
_declare("fax_rx", ctypes.c_int, _void_p, _int16_p, ctypes.c_int)
_declare("fax_tx", ctypes.c_int, _void_p, _int16_p, ctypes.c_int)
_declare("fax_set_transmit_on_idle", None, _void_p, ctypes.c_int)
_declare("fax_get_t30_state", _void_p, _void_p)
_declare("fax_get_logging_state", _void_p, _void_p)
_declare("t30_get_logging_state", _void_p, _void_p)
_declare("t30_set_tx_file", None, _void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int)
_declare("t30_set_rx_file", None, _void_p, ctypes.c_char_p, ctypes.c_int)
_declare("t30_set_tx_ident", ctypes.c_int, _void_p, ctypes.c_char_p)
_declare("t30_get_rx_ident", ctypes.c_char_p, _void_p)
_declare("t30_get_tx_ident", ctypes.c_char_p, _void_p)
_declare("t30_set_tx_page_header_info", ctypes.c_int, _void_p, ctypes.c_char_p)
_declare("t30_set_ecm_capability", ctypes.c_int, _void_p, ctypes.c_int)
_declare("t30_set_supported_modems", ctypes.c_int, _void_p, ctypes.c_int)
_declare("t30_set_supported_compressions", ctypes.c_int, _void_p, ctypes.c_int)
_declare("t30_set_phase_b_handler", None, _void_p, _PHASE_BD_FUNC, _void_p)
_declare("t30_set_phase_d_handler", None, _void_p, _PHASE_BD_FUNC, _void_p)
_declare("t30_set_phase_e_handler", None, _void_p, _PHASE_E_FUNC, _void_p)
_declare("t30_get_transfer_statistics", None, _void_p, ctypes.POINTER(T30Stats))
_declare("t30_call_active", ctypes.c_int, _void_p)
_declare("t30_terminate", None, _void_p)
_declare("t30_completion_code_to_str", ctypes.c_char_p, ctypes.c_int)
_declare("span_log_set_level", ctypes.c_int, _void_p, ctypes.c_int)
_declare("span_log_set_tag", ctypes.c_int, _void_p, ctypes.c_char_p)
_declare("span_log_set_message_handler", None, _void_p, _MESSAGE_FUNC)
_declare("awgn_init_dbm0", _void_p, _void_p, ctypes.c_int, ctypes.c_float)
_declare("awgn_free", ctypes.c_int, _void_p)
_declare("awgn", ctypes.c_int16, _void_p)


def _forward_log_message(level: int, text: bytes | None) -> None:
    if text:
        logger.debug("spandsp: %s", text.decode("ascii", "replace").rstrip())


# One handler for every state. It must outlive them all, so it lives at module level.
_message_handler = _MESSAGE_FUNC(_forward_log_message)

# span_log_set_tag keeps the pointer it is given, so each tag's buffer lives forever.
_tag_buffers: dict[str, ctypes.Array[ctypes.c_char]] = {}


def _configure_logging(logging_state: int | None, tag: str) -> None:
    """Forward spandsp's protocol warnings to Python logging, if DEBUG is on for this module.

    spandsp states start at level NONE, which prints nothing and costs no
    callback per message. The level is chosen when a state is created.
    """
    if not logging_state:
        return
    if logger.isEnabledFor(logging.DEBUG):
        level = int(LogLevel.PROTOCOL_WARNING) | _LOG_SHOW_TAG | _LOG_SHOW_PROTOCOL
        buffer = _tag_buffers.setdefault(
            tag, ctypes.create_string_buffer(tag.encode("ascii", "replace")))
        _lib.span_log_set_tag(logging_state, buffer)
        _lib.span_log_set_message_handler(logging_state, _message_handler)
    else:
        level = int(LogLevel.NONE)
    _lib.span_log_set_level(logging_state, level)


def completion_code_text(code: int) -> str:
    """Return spandsp's description of a T.30 completion code, such as "OK"."""
    text = _lib.t30_completion_code_to_str(code)
    return text.decode("ascii", "replace") if text else f"unknown completion code {code}"


def new_audio_buffer(samples: int) -> AudioBuffer:
    """Allocate a zeroed block of `samples` 16-bit audio samples."""
    return (ctypes.c_int16 * samples)()


def _encode_text(value: str, field: str, max_length: int) -> bytes:
    data = value.encode("ascii")
    if len(data) > max_length:
        raise ValueError(f"{field} is {len(data)} characters long; the maximum is {max_length}")
    return data


def _encode_path(path: str | os.PathLike[str]) -> bytes:
    return os.fsencode(os.fspath(path))


def _call_handler(handler: PhaseHandler, value: int) -> None:
    # An exception must not unwind through spandsp's C frames, and ctypes would
    # only print it, so it is logged here and the call carries on.
    try:
        handler(value)
    except Exception:
        logger.exception("fax phase handler %r failed", handler)


class T30:
    """The T.30 protocol engine inside a `FaxState`. It does not own its memory."""

    def __init__(self, state: int) -> None:
        self._state = state
        # Keeps the ctypes callback objects alive for as long as spandsp may call them.
        self._callbacks: dict[str, object] = {}

    def set_tx_file(self, path: str | os.PathLike[str], start_page: int = -1,
                    stop_page: int = -1) -> None:
        """Queue a TIFF/F file to send. Page numbers start at 0, and -1 means no limit."""
        _lib.t30_set_tx_file(self._state, _encode_path(path), start_page, stop_page)

    def set_rx_file(self, path: str | os.PathLike[str], stop_page: int = -1) -> None:
        """Set the TIFF file that received pages are written to."""
        _lib.t30_set_rx_file(self._state, _encode_path(path), stop_page)

    def set_tx_ident(self, ident: str) -> None:
        """Set the identity this side sends: the TSI when sending, the CSI when receiving.

        Raises ValueError if it is not ASCII or longer than 20 characters.
        """
        data = _encode_text(ident, "station id", MAX_IDENT_LENGTH)
        if _lib.t30_set_tx_ident(self._state, data) != 0:
            raise ValueError(f"spandsp rejected the station id {ident!r}")

    def set_tx_page_header_info(self, text: str) -> None:
        """Set the text of the header line that spandsp adds to the top of each sent page.

        An empty string sends the pages without a header line. Raises
        ValueError if the text is not ASCII or longer than 50 characters.
        """
        data = _encode_text(text, "page header text", MAX_PAGE_HEADER_LENGTH)
        if _lib.t30_set_tx_page_header_info(self._state, data) != 0:
            raise ValueError(f"spandsp rejected the page header text {text!r}")

    def set_ecm_capability(self, enabled: bool) -> None:
        """Allow or forbid error correction mode (ECM)."""
        _lib.t30_set_ecm_capability(self._state, int(enabled))

    def set_supported_modems(self, modems: Modem) -> None:
        """Set the image modems this side offers or accepts."""
        _lib.t30_set_supported_modems(self._state, int(modems))

    def set_supported_compressions(self, compressions: Compression) -> None:
        """Set the image codings this side offers or accepts."""
        _lib.t30_set_supported_compressions(self._state, int(compressions))

    def set_phase_b_handler(self, handler: PhaseHandler) -> None:
        """Call `handler(frame_type)` when the capabilities exchange (phase B) ends."""
        self._set_phase_bd("b", _lib.t30_set_phase_b_handler, handler)

    def set_phase_d_handler(self, handler: PhaseHandler) -> None:
        """Call `handler(frame_type)` after each page's post-message exchange (phase D)."""
        self._set_phase_bd("d", _lib.t30_set_phase_d_handler, handler)

    def set_phase_e_handler(self, handler: PhaseHandler) -> None:
        """Call `handler(completion_code)` when the call ends (phase E)."""

        def call(_state: int | None, _user_data: int | None, completion_code: int) -> None:
            _call_handler(handler, completion_code)

        callback = _PHASE_E_FUNC(call)
        self._callbacks["e"] = callback
        _lib.t30_set_phase_e_handler(self._state, callback, None)

    def _set_phase_bd(self, phase: str, setter: Callable[..., None],
                      handler: PhaseHandler) -> None:
        def call(_state: int | None, _user_data: int | None, frame_type: int) -> int:
            _call_handler(handler, frame_type)
            return 0  # T30_ERR_OK: carry on with the call

        callback = _PHASE_BD_FUNC(call)
        self._callbacks[phase] = callback
        setter(self._state, callback, None)

    def transfer_statistics(self) -> T30Stats:
        """Return a snapshot of the transfer statistics."""
        stats = T30Stats()
        _lib.t30_get_transfer_statistics(self._state, ctypes.byref(stats))
        return stats

    def rx_ident(self) -> str:
        """Return the identity the far end sent (its TSI or CSI), or "" if none arrived."""
        ident = _lib.t30_get_rx_ident(self._state)
        return ident.decode("ascii", "replace").strip() if ident else ""

    def tx_ident(self) -> str:
        """Return the identity this side sends."""
        ident = _lib.t30_get_tx_ident(self._state)
        return ident.decode("ascii", "replace").strip() if ident else ""

    def call_active(self) -> bool:
        """Return False once the call has finished."""
        return bool(_lib.t30_call_active(self._state))

    def terminate(self) -> None:
        """Tell T.30 that the line dropped. It runs phase E if the call was still active."""
        _lib.t30_terminate(self._state)


class FaxState:
    """A fax terminal on an analogue line: T.30 plus the V.21, V.27ter, V.29 and V.17 modems.

    Audio goes in with `rx` and comes out of `tx`, in blocks of 16-bit
    samples at 8 kHz. Call `close` to free the C memory.
    """

    def __init__(self, calling_party: bool, log_tag: str = "fax") -> None:
        state = _lib.fax_init(None, int(calling_party))
        if not state:
            raise MemoryError("spandsp fax_init failed")
        self._state: int | None = state
        t30_state = _lib.fax_get_t30_state(state)
        _configure_logging(_lib.fax_get_logging_state(state), log_tag)
        _configure_logging(_lib.t30_get_logging_state(t30_state), log_tag)
        self.t30 = T30(t30_state)

    def _live_state(self) -> int:
        if self._state is None:
            raise RuntimeError("the fax state is closed")
        return self._state

    def rx(self, audio: AudioBuffer, samples: int) -> int:
        """Process received audio; return the number of samples left unprocessed."""
        return int(_lib.fax_rx(self._live_state(), audio, samples))

    def tx(self, audio: AudioBuffer, samples: int) -> int:
        """Generate up to `samples` samples of audio to send; return the number generated."""
        return int(_lib.fax_tx(self._live_state(), audio, samples))

    def set_transmit_on_idle(self, enabled: bool) -> None:
        """Make `tx` fill the block with silence when there is nothing to send."""
        _lib.fax_set_transmit_on_idle(self._live_state(), int(enabled))

    def close(self) -> None:
        """Free the C state. The object is unusable afterwards; closing twice is allowed."""
        if self._state is not None:
            _lib.fax_free(self._state)
            self._state = None


class WhiteNoise:
    """spandsp's additive white Gaussian noise generator (awgn.h)."""

    def __init__(self, level_dbm0: float, seed: int) -> None:
        state = _lib.awgn_init_dbm0(None, seed, level_dbm0)
        if not state:
            raise MemoryError("spandsp awgn_init_dbm0 failed")
        self._state: int | None = state

    def samples(self, count: int) -> list[int]:
        """Return the next `count` noise samples."""
        if self._state is None:
            raise RuntimeError("the noise generator is closed")
        generate = _lib.awgn
        state = self._state
        return [generate(state) for _ in range(count)]

    def close(self) -> None:
        """Free the C state; closing twice is allowed."""
        if self._state is not None:
            _lib.awgn_free(self._state)
            self._state = None
