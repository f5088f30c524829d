"""Images (OCR) and audio (transcripts with time spans) with the models the packages ship."""

from __future__ import annotations

import hashlib
import itertools
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa

from daytwo.cli.main import run
from daytwo.knowledge import KnowledgeBase, media
from daytwo.knowledge.acl import EVERYONE
from daytwo.knowledge.erase import erase
from daytwo.knowledge.ingest import content_hash
from daytwo.store.tables.knowledge import KbChunk, KbDocMeta, KbDocument

from .media_fixtures import render_text, speak, transcode

pytestmark = pytest.mark.skipif(
    not (media.available("image") and media.available("audio")),
    reason="the multimodal extra is not installed (pip install 'daytwo[multimodal]')",
)

VOICEMAIL = [
    "Hello, this is Carol from Acme Pottery.",
    "I am calling about order number four two seven one.",
    "The teapot arrived broken, the lid is cracked in two places.",
    "I would like a replacement rather than a refund.",
    "The box looked fine, so it must have been packed loosely.",
    "You can reach me on my mobile any afternoon this week.",
    "Please also check the matching cups, two of them rattle.",
    "If a courier has to collect the parcel, Thursday works best.",
    "Thanks a lot, and have a good day. Goodbye.",
]


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    render_text(root / "warranty_scan.png", ["Warranty card", "Serial KX-2291 covered until 2027"])
    render_text(root / "shelf.jpg", ["Shelf label: celadon glaze"], exif_date="2026:11:05 10:22:01")
    from PIL import Image

    Image.new("RGB", (300, 200), "white").save(root / "blank.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    speak(root / "voicemail.wav", VOICEMAIL, pause=1.5)  # about 40 seconds
    (root / "garbled.mp3").write_bytes(b"ID3\x03\x00 this is not audio at all" * 20)
    return root


def _copy(src: Path, dst: Path, names: list[str]) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_images_ocr_metadata_blob_and_skips(
    sqlite_kb: KnowledgeBase, media_dir: Path, tmp_path: Path
) -> None:
    root = _copy(
        media_dir, tmp_path / "img", ["warranty_scan.png", "shelf.jpg", "blank.png", "broken.png"]
    )
    report = sqlite_kb.ingest_path(root, "img")
    reasons = {s.item: s.reason for s in report.skipped}
    assert reasons["blank.png"] == "no text found in the image by OCR (not indexed)"
    assert reasons["broken.png"].startswith("corrupt png file: not a readable image")
    assert report.added == 2
    scan = sqlite_kb.get_document("img", "warranty_scan.png")
    assert scan is not None
    assert "Warranty card" in scan.text
    assert "KX-2291" in scan.text
    meta = scan.metadata
    assert (meta["type"], meta["width"], meta["height"], meta["format"]) == (
        "image",
        760,
        160,
        "png",
    )
    data = (root / "warranty_scan.png").read_bytes()
    assert meta["blob_sha256"] == hashlib.sha256(data).hexdigest()
    assert meta["blob_bytes"] == len(data)
    assert meta["blob_path"] == (root / "warranty_scan.png").resolve().as_posix()
    assert meta["extractor"].startswith("rapidocr-onnxruntime/")
    shelf = sqlite_kb.get_document("img", "shelf.jpg")
    assert shelf is not None
    assert shelf.metadata["exif_date"] == "2026-11-05T10:22:01"
    hits = sqlite_kb.search("img", "celadon glaze", "u", ("staff",), "bm25")
    assert hits[0].doc_id == "shelf.jpg"


def test_unchanged_media_is_not_derived_again(
    kb: KnowledgeBase, media_dir: Path, tmp_path: Path
) -> None:
    sqlite_kb = kb  # on both stores: the lookup of what was derived is SQL
    root = _copy(media_dir, tmp_path / "m", ["warranty_scan.png", "voicemail.wav"])
    first = sqlite_kb.ingest_path(root, "m")
    assert first.added >= 3
    # Mark the stored text (and its hash): if the models ran again, the sync would
    # find the fresh OCR text differ and overwrite it.
    with sqlite_kb.store.session(write=True) as s:
        row = s.get(KbDocument, ("m", "warranty_scan.png"))
        assert row is not None
        row.text = row.text + " (derived earlier)"
        row.content_hash = content_hash(row.title, row.text, row.meta, [EVERYONE], False)
    again = sqlite_kb.ingest_path(root, "m")
    assert (again.added, again.updated, again.deleted, again.chunks) == (0, 0, 0, 0)
    assert again.unchanged == first.added
    kept = sqlite_kb.get_document("m", "warranty_scan.png")
    assert kept is not None
    assert kept.text.endswith("(derived earlier)")
    # Changed bytes are derived again.
    render_text(root / "warranty_scan.png", ["Warranty card", "Serial KX-3300 covered until 2028"])
    third = sqlite_kb.ingest_path(root, "m")
    assert (third.updated, third.added) == (1, 0)
    new = sqlite_kb.get_document("m", "warranty_scan.png")
    assert new is not None
    assert "KX-3300" in new.text


def test_voicemail_transcript_parts_carry_their_time_span(
    sqlite_kb: KnowledgeBase, media_dir: Path, tmp_path: Path
) -> None:
    root = _copy(media_dir, tmp_path / "a", ["voicemail.wav", "garbled.mp3"])
    transcode(root / "voicemail.wav", root / "voicemail-copy.ogg")
    seen: list[tuple[str, float, float]] = []
    report = sqlite_kb.ingest_path(
        root, "a", read_progress=lambda item, done, total: seen.append((item, done, total))
    )
    assert {item for item, _d, _t in seen} == {"voicemail.wav", "voicemail-copy.ogg"}
    assert [s.item for s in report.skipped] == ["garbled.mp3"]
    assert report.skipped[0].reason.startswith("corrupt mp3 file:")
    parts = sorted(
        (
            d
            for d in sqlite_kb.documents("a", include_private=True)
            if d.doc_id.startswith("voicemail.wav")
        ),
        key=lambda d: d.metadata["start"],
    )
    assert len(parts) >= 2
    assert parts[0].doc_id == "voicemail.wav@00:00"
    assert parts[0].metadata["start"] == 0.0
    for before, after in itertools.pairwise(parts):
        assert before.metadata["end"] <= after.metadata["start"]
    assert all(p.metadata["end"] - p.metadata["start"] <= media.SPAN_SECONDS + 10 for p in parts)
    assert parts[-1].metadata["end"] <= parts[-1].metadata["duration"] + 1
    assert parts[0].metadata["parts"] == len(parts)
    whole = " ".join(p.text for p in parts).lower()
    assert "teapot" in whole
    assert "replacement" in whole
    assert "[00:00]" in parts[0].text
    hits = sqlite_kb.search("a", "thanks good day goodbye", "u", ("staff",), "bm25")
    later = next(h for h in hits if h.doc_id.startswith("voicemail.wav"))
    assert later.doc_id != "voicemail.wav@00:00"  # the later part of the message
    # The ogg copy was transcribed too.
    assert sqlite_kb.get_document("a", "voicemail-copy.ogg@00:00") is not None


def test_long_audio_is_decoded_in_bounded_windows(
    media_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(media, "WINDOW_SECONDS", 8)
    windows = list(media._audio_windows(str(media_dir / "voicemail.wav")))
    assert len(windows) >= 3
    assert all(w.shape[0] <= 8 * 16000 for _offset, w in windows)
    # Contiguous: each window starts where the previous one was cut, at a pause.
    for (offset, w), (following, _next) in itertools.pairwise(windows):
        assert following == pytest.approx(offset + w.shape[0] / 16000)
        assert following > offset + 6  # cut within the last quarter of the window
        edge = w[-800:]
        assert float((edge**2).mean() ** 0.5) < 0.05 * float(abs(w).max())
    calls: list[tuple[float, float]] = []
    segments, duration = media.transcribe(
        str(media_dir / "voicemail.wav"), lambda done, total: calls.append((done, total))
    )
    assert duration > 16
    # Progress after each window, in seconds, against the length from the header.
    assert len(calls) == len(windows)
    assert [d for d, _t in calls] == sorted(d for d, _t in calls)
    assert calls[-1][0] == pytest.approx(duration)
    assert calls[0][1] == pytest.approx(duration, abs=0.1)
    assert max(end for _s, end, _t in segments) > 16  # offsets of later windows applied
    assert "teapot" in " ".join(t for _s, _e, t in segments).lower()


def test_erase_removes_ocr_text_transcripts_and_blob_refs(
    sqlite_kb: KnowledgeBase, media_dir: Path, tmp_path: Path
) -> None:
    root = _copy(media_dir, tmp_path / "e", ["warranty_scan.png", "voicemail.wav"])
    sqlite_kb.ingest_path(root, "e")
    sha = hashlib.sha256((root / "warranty_scan.png").read_bytes()).hexdigest()
    erase(sqlite_kb, "e", document="warranty_scan.png")
    receipt = erase(sqlite_kb, "e", where="path=voicemail.wav")
    assert receipt.documents >= 2  # every part of the transcript
    with sqlite_kb.store.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(KbDocument)) == 0
        assert s.scalars(sa.select(KbDocMeta.value).where(KbDocMeta.value == sha)).all() == []
        assert s.scalars(sa.select(KbChunk.text).where(KbChunk.collection == "e")).all() == []
    assert sqlite_kb.search("e", "teapot", "u", ("staff",), "bm25") == []
    assert sqlite_kb.search("e", "warranty", "u", ("staff",), "bm25") == []


def test_an_image_attached_to_an_e_mail_is_ocrd(
    sqlite_kb: KnowledgeBase, media_dir: Path, tmp_path: Path
) -> None:
    msg = EmailMessage()
    msg["From"] = "carol@customer.example"
    msg["To"] = "support@shop.example"
    msg["Subject"] = "Warranty"
    msg["Message-ID"] = "<w-1@customer.example>"
    msg.set_content("The warranty card is attached.")
    png = (media_dir / "warranty_scan.png").read_bytes()
    msg.add_attachment(png, maintype="image", subtype="png", filename="card.png")
    root = tmp_path / "mail"
    root.mkdir()
    (root / "w.eml").write_bytes(bytes(msg))
    sqlite_kb.ingest_path(root, "mail")
    child = sqlite_kb.get_document("mail", "mail:w-1@customer.example/1/card.png")
    assert child is not None
    assert "KX-2291" in child.text
    assert child.metadata["blob_path"] == "w.eml/card.png"
    assert child.metadata["blob_sha256"] == hashlib.sha256(png).hexdigest()
    assert child.acl == ["user:carol@customer.example", "user:support@shop.example"]


def test_cli_ingest_of_a_recording_and_a_missing_extra(
    tmp_path: Path,
    media_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DAYTWO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAYTWO_EMBEDDER", "hashing-384")
    assert run(["db", "upgrade"]) == 0
    assert run(["kb", "ingest", str(media_dir / "voicemail.wav"), "-c", "v"]) == 0
    out = capsys.readouterr().out
    assert "v: 2 added, 0 updated" in out  # two parts of about 30 s
    assert "0 skipped" in out
    assert run(["kb", "ingest", str(media_dir / "voicemail.wav"), "-c", "v"]) == 0
    assert "0 added, 0 updated" in capsys.readouterr().out
    # An environment without the OCR package (None in sys.modules: "not importable").
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    assert run(["kb", "ingest", str(media_dir / "shelf.jpg"), "-c", "x"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'daytwo[multimodal]'" in err
    assert "Traceback" not in err
    folder = _copy(media_dir, tmp_path / "f", ["shelf.jpg"])
    (folder / "note.txt").write_text("a note")
    assert run(["kb", "ingest", str(folder), "-c", "x"]) == 0
    out = capsys.readouterr().out
    assert "skipped shelf.jpg: image files need the multimodal extra" in out


def test_a_scanned_pdf_is_read_by_ocr(
    sqlite_kb: KnowledgeBase, media_dir: Path, tmp_path: Path
) -> None:
    from PIL import Image

    root = tmp_path / "pdf"
    root.mkdir()
    page = render_text(tmp_path / "page.png", ["Returns form", "Reference RMA-5531 approved"])
    with Image.open(page) as image:
        image.convert("RGB").save(root / "returns_scan.pdf")  # a page image, no text layer
    report = sqlite_kb.ingest_path(root, "pdf")
    assert report.skipped == []
    doc = sqlite_kb.get_document("pdf", "returns_scan.pdf")
    assert doc is not None
    assert "RMA-5531" in doc.text
    assert doc.metadata["scanned_pages"] == 1
    assert (
        doc.metadata["blob_sha256"]
        == hashlib.sha256((root / "returns_scan.pdf").read_bytes()).hexdigest()
    )
    again = sqlite_kb.ingest_path(root, "pdf")
    assert (again.unchanged, again.chunks) == (1, 0)
