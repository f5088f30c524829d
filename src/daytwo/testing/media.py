"""Media made on the spot: text rendered with Pillow, speech by libespeak-ng.

libespeak-ng and its voice data come from the ``espeakng-loader`` package (the dev extra),
so no system package is needed; it is driven through its C API with ctypes.
"""

from __future__ import annotations

import array
import ctypes
import threading
import wave
from pathlib import Path
from typing import Any

__all__ = ["render_text", "speak", "transcode"]

_lock = threading.Lock()
_speech: dict[str, Any] = {}


def render_text(path: Path, lines: list[str], *, exif_date: str | None = None) -> Path:
    """An image of ``lines`` in black on white (png or jpg by the suffix)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=30)
    image = Image.new("RGB", (760, 60 + 50 * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(lines):
        draw.text((30, 30 + 50 * number), line, fill="black", font=font)
    options: dict[str, Any] = {}
    if exif_date is not None:
        exif = Image.Exif()
        exif[306] = exif_date  # DateTime, "YYYY:MM:DD HH:MM:SS"
        options["exif"] = exif
    image.save(path, **options)
    return path


def _engine() -> tuple[Any, int, list[bytes]]:
    with _lock:
        if not _speech:
            import espeakng_loader

            lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
            lib.espeak_Initialize.argtypes = [
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_int,
            ]
            synchronous = 2  # AUDIO_OUTPUT_SYNCHRONOUS: samples go to the callback
            rate = lib.espeak_Initialize(
                synchronous, 0, espeakng_loader.get_data_path().encode(), 0
            )
            if rate <= 0:
                raise RuntimeError("libespeak-ng did not initialise")
            chunks: list[bytes] = []
            callback_type = ctypes.CFUNCTYPE(
                ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
            )

            def collect(wav: Any, count: int, _events: Any) -> int:
                if wav and count > 0:
                    chunks.append(ctypes.string_at(wav, count * 2))
                return 0

            callback = callback_type(collect)
            lib.espeak_SetSynthCallback(callback)
            lib.espeak_SetVoiceByName(b"en-us")
            lib.espeak_Synth.argtypes = [
                ctypes.c_char_p,
                ctypes.c_size_t,
                ctypes.c_uint,
                ctypes.c_int,
                ctypes.c_uint,
                ctypes.c_uint,
                ctypes.c_void_p,
                ctypes.c_void_p,
            ]
            _speech.update(lib=lib, rate=rate, chunks=chunks, callback=callback)
        return _speech["lib"], _speech["rate"], _speech["chunks"]


def speak(path: Path, sentences: list[str], *, pause: float = 0.0) -> Path:
    """A mono 16-bit WAV of ``sentences`` read aloud, ``pause`` seconds of silence between."""
    lib, rate, chunks = _engine()
    samples = array.array("h")
    with _lock:
        for number, sentence in enumerate(sentences):
            chunks.clear()
            text = sentence.encode()
            if lib.espeak_Synth(text, len(text) + 1, 0, 1, 0, 0, None, None) != 0:
                raise RuntimeError("libespeak-ng could not speak")
            lib.espeak_Synchronize()
            samples.frombytes(b"".join(chunks))
            if number < len(sentences) - 1:
                samples.extend([0] * int(pause * rate))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def transcode(source: Path, target: Path) -> Path:
    """``source`` re-encoded in the format of ``target``'s suffix (mp3, ogg) with PyAV."""
    import av

    codec, rate = {".mp3": ("libmp3lame", 22050), ".ogg": ("libopus", 48000)}[target.suffix]
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        stream: Any = out.add_stream(codec, rate=rate)  # an audio stream (codec above)
        for frame in inp.decode(audio=0):
            frame.pts = None
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return target
