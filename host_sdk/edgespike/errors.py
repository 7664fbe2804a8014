"""Named exceptions of the EdgeSpike SDK.

Every failure a user can act on has its own class, and every message says what to do next.
"""
from __future__ import annotations


class EdgeSpikeError(Exception):
    """Base class of every EdgeSpike error."""


class ModelError(EdgeSpikeError):
    """A model is malformed, out of range, or does not fit a target."""


class ModelTooLarge(ModelError):
    """A model needs more memory than the target offers."""


class BlobError(ModelError):
    """A model blob could not be read (truncated, wrong version, hash mismatch)."""


class ModelFormatError(BlobError):
    """A correctly hashed blob holds something this SDK cannot interpret.

    An unknown enum value (input kind, decoding, encoder, layer kind, weight encoding, reset
    mode), a per-neuron array whose length is not a whole number of values, or protobuf bytes
    outside the wire grammar the SDK and the firmware share (docs/SEMANTICS.md, "Which blobs
    are accepted"). The firmware refuses the same blobs.
    """


class ToolMissing(EdgeSpikeError):
    """A tool or optional package the operation needs is not installed."""


class DeviceError(EdgeSpikeError):
    """Base class of errors talking to a device (real or emulated)."""


class DeviceTimeout(DeviceError):
    """The device did not answer in time."""


class LinkClosed(DeviceError):
    """The connection to the device dropped."""


class FramingError(DeviceError):
    """A frame could not be decoded (COBS, CRC or protobuf)."""


class DeviceRejected(DeviceError):
    """The device answered a request with an Error message.

    Attributes:
        code: the protocol's ErrorCode name, e.g. ``"ERR_MODEL_INVALID"``.
        detail: the device's detail number (a layer index or byte offset), or 0.
    """

    def __init__(self, code: str, message: str, detail: int = 0) -> None:
        super().__init__(f"device rejected the request: {code}: {message}")
        self.code = code
        self.device_message = message
        self.detail = detail


class DeviceBusy(DeviceRejected):
    """The device serves another host (``ERR_BUSY``: the host device's TCP client slot is
    taken) and stayed busy for as long as the caller was willing to wait."""

    def __init__(self, message: str, detail: int = 0) -> None:
        super().__init__("ERR_BUSY", message, detail)


class EmulatorError(DeviceError):
    """The emulated board could not be started or died."""


class InputError(EdgeSpikeError):
    """An inference input does not match the model (shape, range, event index or step)."""


class StreamError(DeviceError):
    """A live stream (``Device.stream``) failed."""


class StreamInterrupted(StreamError):
    """The link dropped (or the device went silent) in the middle of a stream.

    Attributes:
        last_acked_seq: the last ``EventBatch.batch_seq`` the device acknowledged as run:
            every step up to that batch was processed and its decisions delivered.
        last_sent_seq: the last batch sent (batches after ``last_acked_seq`` may be lost).
    """

    def __init__(self, message: str, last_acked_seq: int, last_sent_seq: int = 0) -> None:
        super().__init__(f"{message} (last acknowledged batch {last_acked_seq}, last sent "
                         f"{last_sent_seq}); reconnect and start a new stream from there")
        self.last_acked_seq = last_acked_seq
        self.last_sent_seq = last_sent_seq


class StreamGap(StreamError):
    """A sequence gap in a stream: batches or outputs were lost on the link.

    Attributes:
        expected: the sequence number that should have come.
        got: the one that came (0 when the device reported the gap).
    """

    def __init__(self, message: str, expected: int, got: int = 0) -> None:
        super().__init__(f"{message} (expected {expected}, got {got})")
        self.expected = expected
        self.got = got


class FlashError(DeviceError):
    """A firmware image could not be flashed (unreadable image, the debugger refused a write,
    a reset failed); the message says which step and what to check."""


class FlashVerifyError(FlashError):
    """What was read back after flashing differs from the image.

    Attributes:
        address: the first address whose byte differs.
        expected: the image's byte there.
        got: the byte read back.
    """

    def __init__(self, message: str, address: int, expected: int, got: int) -> None:
        super().__init__(message)
        self.address = address
        self.expected = expected
        self.got = got


class ProbeNotFound(FlashError):
    """No debug probe (CMSIS-DAP, ST-Link, J-Link) is connected, or not the one asked for."""


class FirmwareBuildError(EdgeSpikeError):
    """The firmware did not build for a board (unknown board, CMake or compiler failure); the
    message carries the end of the build's output."""
