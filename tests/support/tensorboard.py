"""Read scalars back from TensorBoard event files (TFRecord framing of ``Event`` protos), with
the proto classes of tensorboardX: no TensorFlow or tensorboard package needed."""

from __future__ import annotations

import struct
from pathlib import Path


def scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value), ...] over every event file under ``logdir``, in write order."""
    from tensorboardX.proto.event_pb2 import Event

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(Path(logdir).rglob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            record = data[pos + 12 : pos + 12 + length]  # skip the length's CRC
            pos += 12 + length + 4  # and the record's CRC
            event = Event.FromString(record)
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out
