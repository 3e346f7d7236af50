"""Device selection errors and the callback ring of the microphone source (no device needed)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.audio import mic
from engine.audio.mic import DeviceInfo, _Ring, describe_inputs, resolve_input_device
from engine.audio.source import AudioSourceError


def test_ring_hands_off_in_order_and_counts_drops() -> None:
    r = _Ring(8)
    r.write(np.arange(5, dtype=np.float32))
    out = np.zeros(3, np.float32)
    r.read_into(out)
    np.testing.assert_array_equal(out, [0, 1, 2])
    r.write(np.arange(5, 10, dtype=np.float32))  # wraps around the end
    assert r.available() == 7
    r.write(np.arange(3, dtype=np.float32))  # would overflow: dropped, counted
    assert r.dropped == 3
    out = np.zeros(7, np.float32)
    r.read_into(out)
    np.testing.assert_array_equal(out, [3, 4, 5, 6, 7, 8, 9])


def test_unknown_device_lists_what_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = [
        DeviceInfo(0, "Built-in Output", "ALSA", 0, 2, 48000.0),
        DeviceInfo(1, "USB Mic", "ALSA", 1, 0, 44100.0),
    ]
    monkeypatch.setattr(mic, "list_devices", lambda: fake)
    assert resolve_input_device("usb").index == 1
    assert resolve_input_device("1").index == 1
    with pytest.raises(AudioSourceError, match=r"no input device matches 'studio'.*\[1\] USB Mic"):
        resolve_input_device("studio")
    with pytest.raises(AudioSourceError, match=r"no input device with index 0.*USB Mic"):
        resolve_input_device(0)  # an output-only device is not an input


def test_no_devices_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mic, "list_devices", lambda: [])
    with pytest.raises(AudioSourceError, match="no input devices exist"):
        resolve_input_device(None)
    assert "no input devices" in describe_inputs([])


def test_real_portaudio_enumeration_runs() -> None:
    # whatever this machine has (often nothing): the call works and the answer is consistent
    devices = mic.list_devices()
    assert all(d.index == i for i, d in enumerate(devices))
