"""Multi-modal ingest cost, measured: text, scanned images, voicemails, e-mail threads.

Generates a mixed help-desk collection locally (text articles; images rendered with
Pillow and read back by OCR; voicemails spoken by libespeak-ng and transcribed; an mbox
of threads), ingests each modality into its own collection and then the mix into one,
and reports per modality items/s, bytes stored per item (vectors + HNSW + chunk text +
the document text kept as the system of record; image/audio files are referenced, not
copied, so their bytes are listed apart) and the ratio of the multi-modal generation to
the text-only one (storage and time, in total and per item).

It then checks ``kb migrate --estimate``: on the mixed collection it predicts a new
generation (MiniLM, chunking size=128) from a sample, runs the real migration and
reports the prediction's error for time and storage (target: within ±25 %).

    PYTHONPATH=src python bench/multimodal.py --json bench/results/multimodal.json
"""

from __future__ import annotations

import argparse
import mailbox
import shutil
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from _common import add_lock_options, machine, measuring, run_locked, write_result
from daytwo.knowledge import KnowledgeBase
from daytwo.knowledge.chunking import ChunkingConfig
from daytwo.knowledge.estimate import estimate_migration, generation_storage
from daytwo.knowledge.generations import backfill, start_migration
from daytwo.store import Store
from daytwo.store.tables.knowledge import KbDocument
from daytwo.testing.media import render_text, speak

TOPICS = [
    ("refund", "Refunds are paid to the original card within five working days."),
    ("courier", "The courier collects a parcel on the next working day after booking."),
    ("warranty", "The warranty covers cracks in the glaze for two years from delivery."),
    ("password", "A password reset link expires after thirty minutes."),
    ("invoice", "Invoices are sent by e-mail on the first day of each month."),
    ("subscription", "A subscription renews each year unless it is cancelled before."),
]


def make_corpus(
    root: Path, n_text: int, n_images: int, n_audio: int, n_threads: int
) -> dict[str, int]:
    """Write the four modality folders under ``root``; return the source bytes of each."""
    for name in ("text", "images", "audio", "mail"):
        (root / name).mkdir(parents=True)
    for i in range(n_text):
        topic, fact = TOPICS[i % len(TOPICS)]
        body = " ".join(
            f"{fact} Article {i} explains case {j} of the {topic} policy." for j in range(6)
        )
        (root / "text" / f"article_{i:04d}.md").write_text(f"# {topic.title()} {i}\n\n{body}\n")
    for i in range(n_images):
        topic, fact = TOPICS[i % len(TOPICS)]
        words = fact.split()
        render_text(
            root / "images" / f"scan_{i:03d}.png",
            [f"Scanned form {i}: {topic}", " ".join(words[:6]), " ".join(words[6:])],
        )
    for i in range(n_audio):
        topic, fact = TOPICS[i % len(TOPICS)]
        speak(
            root / "audio" / f"voicemail_{i:02d}.wav",
            [f"Hello, this is customer {i} calling about a {topic}.", fact, "Please call me back."],
            pause=0.5,
        )
    box = mailbox.mbox(str(root / "mail" / "support.mbox"))
    for t in range(n_threads):
        topic, fact = TOPICS[t % len(TOPICS)]
        parent = None
        for m in range(4):
            msg = EmailMessage()
            msg["From"] = "carol@example.com" if m % 2 == 0 else "support@acme.test"
            msg["To"] = "support@acme.test" if m % 2 == 0 else "carol@example.com"
            msg["Subject"] = ("Re: " if m else "") + f"Question {t} about {topic}"
            msg["Message-ID"] = f"<t{t}m{m}@acme.test>"
            msg["Date"] = f"Thu, 05 Nov 2026 1{m}:00:00 +0000"
            if parent:
                msg["In-Reply-To"] = parent
                msg["References"] = parent
            msg.set_content(f"Message {m} of thread {t}. {fact}\n\n> quoted earlier text\n")
            box.add(msg)
            parent = msg["Message-ID"]
    box.flush()
    box.close()
    return {
        name: sum(p.stat().st_size for p in (root / name).rglob("*") if p.is_file())
        for name in ("text", "images", "audio", "mail")
    }


def stored(kb: KnowledgeBase, collection: str) -> dict[str, int]:
    """Bytes the collection holds: its active generation plus the documents' text."""
    gen = kb.active_generation(collection)
    kb.save_indexes(collection)
    out = generation_storage(kb, gen.id, kb.index_dir(gen))
    with kb.store.session() as session:
        docs = int(
            session.scalar(
                sa.select(
                    sa.func.coalesce(
                        sa.func.sum(sa.func.length(sa.cast(KbDocument.text, sa.LargeBinary))), 0
                    )
                ).where(KbDocument.collection == collection)
            )
            or 0
        )
    out["documents_text"] = docs
    out["total"] += docs
    return out


def ingest(
    kb: KnowledgeBase, paths: list[Path], collection: str, lock: Path | None
) -> dict[str, Any]:
    with measuring(lock) as measured:
        started = time.perf_counter()
        added = chunks = 0
        skipped: list[Any] = []
        for path in paths:
            report = kb.ingest_path(path, collection, acl=["group:staff"], source_name=path.name)
            added += report.added
            chunks += report.chunks
            skipped += [{"item": s.item, "reason": s.reason} for s in report.skipped]
        seconds = time.perf_counter() - started
    storage = stored(kb, collection)
    return {
        "documents": added,
        "chunks": chunks,
        "skipped": skipped,
        "seconds": round(seconds, 2),
        "storage_bytes": storage,
        "measured": measured,
    }


def run(args: argparse.Namespace, lock: Path | None) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="daytwo-mm-"))
    try:
        corpus = tmp / "corpus"
        started = time.perf_counter()
        sizes = make_corpus(corpus, args.text, args.images, args.audio, args.threads)
        generate_s = time.perf_counter() - started
        items = {
            "text": args.text,
            "images": args.images,
            "audio": args.audio,
            "mail": args.threads * 4,
        }
        store = Store(f"sqlite:///{tmp / 'mm.db'}")
        store.upgrade()
        kb = KnowledgeBase(store, tmp / "data", embedder="minilm-l6-int8")
        # Load the OCR and speech models once before timing (a cold load is not ingest).
        warm = tmp / "warm"
        warm.mkdir()
        render_text(warm / "warm.png", ["Warm up"])
        speak(warm / "warm.wav", ["Warm up."])
        kb.ingest_path(warm, "warmup", acl=["group:staff"])
        modalities: dict[str, Any] = {}
        for name in ("text", "images", "audio", "mail"):
            row = ingest(kb, [corpus / name], name, lock)
            row["items"] = items[name]
            row["source_bytes"] = sizes[name]
            row["items_per_second"] = round(items[name] / row["seconds"], 2)
            row["bytes_stored_per_item"] = round(row["storage_bytes"]["total"] / items[name])
            modalities[name] = row
            print(name, row["seconds"], "s", row["storage_bytes"]["total"], "B", file=sys.stderr)
        mixed = ingest(kb, [corpus / n for n in ("text", "images", "audio", "mail")], "mixed", lock)
        n_items = sum(items.values())
        text = modalities["text"]
        ratio = {
            "storage_total": round(
                mixed["storage_bytes"]["total"] / text["storage_bytes"]["total"], 2
            ),
            "time_total": round(mixed["seconds"] / text["seconds"], 2),
            "storage_per_item": {
                n: round(m["bytes_stored_per_item"] / text["bytes_stored_per_item"], 2)
                for n, m in modalities.items()
            },
            "time_per_item": {
                n: round((m["seconds"] / m["items"]) / (text["seconds"] / text["items"]), 2)
                for n, m in modalities.items()
            },
        }
        # kb migrate --estimate on the mixed collection, then the real migration.
        config = ChunkingConfig(size=128, overlap=24)
        with measuring(lock) as est_measured:
            started = time.perf_counter()
            est = estimate_migration(kb, "mixed", "minilm-l6-int8", chunking=config)
            estimate_s = time.perf_counter() - started
        with measuring(lock) as mig_measured:
            started = time.perf_counter()
            status = start_migration(kb, "mixed", "minilm-l6-int8", chunking=config)
            status = backfill(kb, status.id)
            migrate_s = time.perf_counter() - started
        kb.save_indexes("mixed")
        with kb.store.session() as session:
            from daytwo.store.tables.knowledge import KbGeneration

            gen = session.get(KbGeneration, status.target_generation)
            assert gen is not None
            session.expunge(gen)
        real = generation_storage(kb, gen.id, kb.index_dir(gen))
        kb.close()
        error = {
            "seconds": round(est.seconds / migrate_s - 1, 3),
            **{
                k: round(est.storage[k] / real[k] - 1, 3)
                for k in ("vectors", "index", "text", "total")
                if real[k]
            },
        }
        return {
            "benchmark": "multimodal",
            "machine": machine(),
            "corpus": {
                "items": items,
                "source_bytes": sizes,
                "generate_seconds": round(generate_s, 1),
            },
            "embedder": "minilm-l6-int8",
            "modalities": modalities,
            "mixed": {
                **mixed,
                "items": n_items,
                "items_per_second": round(n_items / mixed["seconds"], 2),
            },
            "multimodal_vs_text_only": ratio,
            "migrate_estimate": {
                "target": {"embedder": "minilm-l6-int8", "chunking": config.to_dict()},
                "estimate": est.to_dict(),
                "estimate_seconds": round(estimate_s, 2),
                "real": {
                    "seconds": round(migrate_s, 2),
                    "storage_bytes": real,
                    "state": status.state,
                },
                "relative_error": error,
                "within_25_percent": all(abs(v) <= 0.25 for v in error.values()),
                "measured": {"estimate": est_measured, "migration": mig_measured},
            },
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=int, default=300, help="text articles")
    parser.add_argument("--images", type=int, default=20, help="scanned images")
    parser.add_argument("--audio", type=int, default=6, help="voicemails (~10 s each)")
    parser.add_argument("--threads", type=int, default=10, help="e-mail threads of 4 messages")
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    add_lock_options(parser)
    args = parser.parse_args()
    write_result(args.json, run_locked(args, run))


if __name__ == "__main__":
    main()
