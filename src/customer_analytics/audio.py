"""Audio support calls: offline speech recognition for the ingest (pluggable, cached, bounded).

A calls folder may hold recordings (:data:`SUFFIXES`: WAV, FLAC, MP3, Ogg Vorbis, decoded by
libsndfile through ``soundfile``) beside the ``.txt`` transcripts. Each recording becomes one row of
the calls source, like a transcript: the customer and date come from the file name
(``<customer_id>_<YYYY-MM-DD>[_anything].<ext>``) and the text from a speech recognizer, with the
recognizer's name and a confidence; a recording that cannot be used is rejected with a reason
(:data:`contract.AUDIO_REASONS`).

* **Recognizer.** Anything with a ``name`` and ``transcribe(chunks) -> (text, confidence)``
  (:class:`Recognizer`). The default, :class:`PocketSphinx`, is CMU PocketSphinx 5 with the
  US-English acoustic and language model shipped inside its wheel: nothing is downloaded. It is
  fast and small, and inaccurate; :func:`word_error_rate` measures it on the shipped demo
  recordings (:func:`demo_benchmark`) and the ingest report says the figure. Another recognizer
  (a local Whisper model, say) is plugged in with ``audio_recognizer: package.module:factory``,
  a callable returning such an object.
* **Decoding.** Any sample rate from :data:`MIN_RATE` to :data:`MAX_RATE` Hz, any number of
  channels (mixed down), 8 to 32-bit integer or float samples; streamed in blocks (memory does
  not grow with the length), resampled to :data:`RATE` Hz 16-bit mono for the recognizer.
* **Rejections.** A file the decoder cannot read or with an unsupported rate is *unreadable
  audio*; one whose loudness stays below :data:`SILENCE_DBFS` or that is shorter than
  :data:`MIN_SECONDS` is *silent audio*; one in which the recognizer finds no word is *no speech
  recognised*; one that does not fit in what is left of ``max_audio_minutes`` of new audio in
  this run is *over max_audio_minutes* (it is transcribed by a later run).
* **Cache.** Transcription is slow (PocketSphinx: about half of real time here), so each result
  (rejections included, except the budget) is stored under ``<cache>/<sha256 of the file>``
  per recognizer: a file is transcribed once, whatever its name, and later runs read the cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import logging
import math
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from customer_analytics import contract, parameters
from customer_analytics.contract import Reason

log = logging.getLogger(__name__)

#: Recording file types read from a calls folder (any case).
SUFFIXES = contract.AUDIO_SUFFIXES
#: Sample rate the recognizer gets (Hz); every recording is resampled to it.
RATE = 16_000
MIN_RATE, MAX_RATE = 8_000, 192_000
#: A recording whose RMS level stays below this (dB relative to full scale) is silent.
SILENCE_DBFS = -50.0
MIN_SECONDS = 0.2
BLOCK_SECONDS = 30
DEFAULT_RECOGNIZER = "pocketsphinx"
_WORD = re.compile(r"[a-z0-9']+")


class Recognizer(Protocol):
    """A speech recognizer: ``name`` (recognizer, version and model: part of the cache key) and
    ``transcribe`` (16-bit mono :data:`RATE` Hz chunks -> text and a confidence in [0, 1] or
    None)."""

    name: str

    def transcribe(self, chunks: Iterable[np.ndarray]) -> tuple[str, float | None]: ...


class PocketSphinx:
    """CMU PocketSphinx 5 with the US-English model shipped in its wheel (no download).

    Each file is decoded as one utterance with its own cepstral mean (``cmn=batch``) by a decoder
    of its own (~0.5 s to load the model): a decoder carries state from one utterance to the next,
    and a transcript must not depend on which files came before it (or were cached). The file is
    held whole for that, 32 KB per second of audio (``max_audio_minutes`` bounds it). The
    confidence is the mean posterior probability of the recognised words.
    """

    def __init__(self) -> None:
        import pocketsphinx

        version = getattr(pocketsphinx, "__version__", None) or _dist_version("pocketsphinx")
        self.name = f"pocketsphinx {version} en-us"
        self._module = pocketsphinx

    def transcribe(self, chunks: Iterable[np.ndarray]) -> tuple[str, float | None]:
        samples = [
            np.ascontiguousarray(c, dtype="<i2") for c in chunks
        ]  # decoding errors raise here
        d = self._module.Decoder(samprate=RATE, loglevel="FATAL", bestpath=True, cmn="batch")
        d.start_utt()
        try:
            if samples:
                d.process_raw(np.concatenate(samples).tobytes(), no_search=False, full_utt=True)
        finally:  # never leave the decoder inside an utterance
            d.end_utt()
        words = [
            (s.word, s.prob) for s in (d.seg() or []) if not s.word.startswith(("<", "[", "+"))
        ]
        text = " ".join(re.sub(r"\(\d+\)$", "", w) for w, _ in words)
        confidence = float(np.mean([p for _, p in words])) if words else None
        return text, confidence


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def recognizer(spec: str = DEFAULT_RECOGNIZER) -> Recognizer:
    """The recognizer named by ``spec``: ``pocketsphinx``, or ``package.module:factory``."""
    spec = parameters.recognizer_spec("audio_recognizer", spec)
    if spec == DEFAULT_RECOGNIZER:
        return PocketSphinx()
    module, attr = spec.split(":")
    made = getattr(importlib.import_module(module), attr)()
    if not isinstance(getattr(made, "name", None), str) or not callable(
        getattr(made, "transcribe", None)
    ):
        raise TypeError(
            f"{spec} did not return a recognizer (an object with .name and .transcribe)."
        )
    return made


def is_audio(path: Path) -> bool:
    """Whether ``path`` is a recording by its extension (:data:`SUFFIXES`, any case)."""
    return path.suffix.lower() in SUFFIXES


def audio_files(folder: Path) -> list[Path]:
    """The recordings of a calls folder, sorted by name (hidden files left out)."""
    from customer_analytics import readers

    return [p for p in readers.call_files(folder) if is_audio(p)]


# --------------------------------------------------------------------------- decoding
class AudioProblem(Exception):
    """A recording cannot be transcribed; ``reason`` is one of :data:`contract.AUDIO_REASONS`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclasses.dataclass(frozen=True)
class Info:
    """What the decoder says of a file without decoding it."""

    format: str
    rate: int
    channels: int
    seconds: float

    def describe(self) -> str:
        return f"{self.format}, {self.rate} Hz, {self.channels} channel(s), {self.seconds:.1f} s"


def info(path: Path) -> Info:
    """Format, sample rate, channels and duration of a recording.

    Raises:
        AudioProblem: unreadable audio (not a recording libsndfile can read, or an unsupported
        rate).
    """
    import soundfile as sf

    try:
        i = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError, TypeError, ValueError) as e:
        raise AudioProblem(Reason.UNREADABLE_AUDIO, "not a readable WAV/FLAC/MP3/Ogg file") from e
    out = Info(str(i.format), int(i.samplerate), int(i.channels), float(i.duration))
    if not MIN_RATE <= out.rate <= MAX_RATE or out.channels < 1:
        raise AudioProblem(
            Reason.UNREADABLE_AUDIO,
            f"unsupported audio ({out.describe()}); expected {MIN_RATE}-{MAX_RATE} Hz",
        )
    return out


def resample(x: np.ndarray, rate: int) -> np.ndarray:
    """Float samples at ``rate`` Hz -> :data:`RATE` Hz (polyphase filter, scipy)."""
    if rate == RATE:
        return x
    from scipy.signal import resample_poly

    g = math.gcd(RATE, rate)
    return resample_poly(x, RATE // g, rate // g)


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> 16-bit integers (clipped)."""
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")


def chunks(path: Path, meta: Info, level: list[float]) -> Iterator[np.ndarray]:
    """The recording as 16-bit mono :data:`RATE` Hz blocks of :data:`BLOCK_SECONDS` s.

    ``level`` receives ``[sum of squares, samples]`` of the original signal as the blocks pass (for
    the silence check).

    Raises:
        AudioProblem: unreadable audio (the file breaks off or is corrupt while decoding).
    """
    import soundfile as sf

    try:
        for block in sf.blocks(
            str(path), blocksize=BLOCK_SECONDS * meta.rate, dtype="float32", always_2d=True
        ):
            mono = block.mean(axis=1, dtype=np.float64)
            level[0] += float(np.dot(mono, mono))
            level[1] += mono.size
            yield to_int16(resample(mono, meta.rate))
    except (RuntimeError, sf.LibsndfileError) as e:
        raise AudioProblem(
            Reason.UNREADABLE_AUDIO, "the file breaks off or is corrupt while decoding"
        ) from e


def dbfs(sum_squares: float, n: int) -> float:
    """RMS level in dB relative to full scale (-inf for digital silence)."""
    if n == 0 or sum_squares <= 0:
        return -math.inf
    return 10 * math.log10(sum_squares / n)


# --------------------------------------------------------------------------- transcription
@dataclasses.dataclass
class Result:
    """One recording: its transcript (``text``) or why there is none (``reason``, ``detail``)."""

    text: str | None
    reason: str | None
    detail: str
    recognizer: str
    confidence: float | None = None
    seconds: float | None = None
    cached: bool = False

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d.pop("cached")
        return json.dumps(d, ensure_ascii=False)


@dataclasses.dataclass
class Transcriber:
    """Transcribes the recordings of one ingest run: cache first, then the recognizer within a
    budget.

    Attributes:
        spec: the recognizer (:func:`recognizer`), built only when a file is not in the cache.
        cache_dir: folder of cached results.
        max_minutes: minutes of *new* audio (not in the cache) transcribed at most in this run.
    """

    spec: str = DEFAULT_RECOGNIZER
    cache_dir: Path | None = None
    max_minutes: float = 10.0
    used_seconds: float = 0.0
    stats: dict[str, int] = dataclasses.field(
        default_factory=lambda: {"cached": 0, "transcribed": 0}
    )
    _recognizer: Recognizer | None = None

    @property
    def engine(self) -> Recognizer:
        if self._recognizer is None:
            self._recognizer = recognizer(self.spec)
        return self._recognizer

    def cache_file(self, digest: str) -> Path | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha256(f"{digest}\0{self.spec}".encode()).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.json"

    def transcribe(self, path: Path, digest: str | None = None) -> Result:
        """The transcript of one recording, from the cache or the recognizer (see the module
        doc)."""
        digest = digest or file_digest(path)
        cached = self._read_cache(digest)
        if cached is not None:
            self.stats["cached"] += 1
            return cached
        try:
            meta = info(path)
        except AudioProblem as p:
            return self._store(digest, Result(None, p.reason, p.detail, self.spec))
        budget = self.max_minutes * 60 - self.used_seconds
        if meta.seconds > budget:
            return Result(
                None,
                Reason.AUDIO_BUDGET,
                f"{meta.seconds / 60:.1f} min of audio; "
                f"{max(budget, 0) / 60:.1f} of max_audio_minutes {self.max_minutes:g} left in this "
                f"run",
                self.spec,
                seconds=meta.seconds,
            )
        self.used_seconds += meta.seconds
        return self._store(digest, self._recognise(path, meta))

    def _recognise(self, path: Path, meta: Info) -> Result:
        level = [0.0, 0]
        started = time.perf_counter()
        try:
            text, confidence = self.engine.transcribe(chunks(path, meta, level))
        except AudioProblem as p:
            return Result(None, p.reason, p.detail, self.engine.name, seconds=meta.seconds)
        self.stats["transcribed"] += 1
        log.info(  # never the file's name: it may hold a customer id
            "transcribed a recording (%.1f s of audio) in %.1f s",
            meta.seconds,
            time.perf_counter() - started,
        )
        loud = dbfs(level[0], int(level[1]))
        name = self.engine.name
        if level[1] < MIN_SECONDS * meta.rate or loud < SILENCE_DBFS:
            return Result(
                None,
                Reason.SILENT_AUDIO,
                f"{meta.describe()}, level {loud:.0f} dBFS "
                f"(silent below {SILENCE_DBFS:g} dBFS or {MIN_SECONDS:g} s)",
                name,
                seconds=meta.seconds,
            )
        text = " ".join(text.split())
        if not text:
            return Result(
                None,
                Reason.NO_SPEECH,
                f"{meta.describe()}: the recognizer found no word",
                name,
                seconds=meta.seconds,
            )
        conf = None if confidence is None else round(min(max(float(confidence), 0.0), 1.0), 4)
        return Result(text, None, meta.describe(), name, conf, meta.seconds)

    def _read_cache(self, digest: str) -> Result | None:
        f = self.cache_file(digest)
        if f is None or not f.is_file():
            return None
        try:
            return Result(**json.loads(f.read_text(encoding="utf-8")), cached=True)
        except (ValueError, TypeError):  # a damaged cache entry: transcribe again
            return None

    def _store(self, digest: str, result: Result) -> Result:
        f = self.cache_file(digest)
        if f is not None and result.reason != Reason.AUDIO_BUDGET:
            from customer_analytics import fsutil

            fsutil.atomic_write(f, result.to_json())
        return result


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (streamed)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(2**20):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- the ingest's hook
#: Folder of cached transcripts, inside ``warehouse_dir`` (shared by every namespace:
# content-addressed).
CACHE_FOLDER = "transcripts"


def settings(params) -> dict:
    """What the ingest's calls plan needs to build a :class:`Transcriber` (from the run's
    parameters)."""
    return {
        "audio_recognizer": params.audio_recognizer,
        "max_audio_minutes": params.max_audio_minutes,
        "transcript_cache": params.warehouse_dir / CACHE_FOLDER,
    }


def transcriber(plan_settings: dict) -> Transcriber:
    """The :class:`Transcriber` of a calls plan's settings (:func:`settings`); defaults where
    absent."""
    return Transcriber(
        plan_settings.get("audio_recognizer", DEFAULT_RECOGNIZER),
        plan_settings.get("transcript_cache"),
        float(plan_settings.get("max_audio_minutes", 10.0)),
    )


def staged_row(
    path: Path, name: str, transcriber: Transcriber, digest, root: Path | None = None
) -> tuple[tuple, int]:
    """The staged calls row of one recording (``readers.CALL_COLUMNS``) and the file's size.

    The customer and date come from the file name (as for a transcript without header lines);
    ``RECORD`` describes the recording (format, rate, channels, duration: nothing personal) or
    why it cannot be used, ``TEXT`` is the transcript. A recording that resolves outside ``root``
    or is not a regular file is rejected unread. ``digest`` is updated with the file's name and
    content hash.
    """
    from customer_analytics import readers

    cid, ts, _ = readers.parse_call("", path.name)
    try:
        real = readers.check_input(path, root)
    except readers.UnsafeInput as e:
        digest.update(name.encode() + b"\0")
        return (name, 1, "", e.reason, "file", cid, ts, None, None, None, None), 0
    size = real.stat().st_size
    sha = file_digest(real)
    digest.update(name.encode() + b"\0" + sha.encode())
    r = transcriber.transcribe(real, sha)
    conf = None if r.confidence is None else f"{r.confidence:.4f}"
    secs = None if r.seconds is None else f"{r.seconds:.2f}"
    record = f"audio: {r.detail}"
    if r.reason:
        return (name, 1, record, r.reason, "audio", cid, ts, None, r.recognizer, None, secs), size
    return (name, 1, record, None, None, cid, ts, r.text, r.recognizer, conf, secs), size


class Progress:
    """Logs the progress of a folder's recordings: after each one transcribed (not cached), and a
    summary at the end."""

    def __init__(self, total: int, transcriber: Transcriber | None):
        self.total, self.transcriber, self.k = total, transcriber, 0
        self.started = time.perf_counter()
        self._cached = transcriber.stats["cached"] if transcriber else 0

    def step(self) -> None:
        self.k += 1
        t = self.transcriber
        if t is None or t.stats["cached"] > self._cached:
            self._cached = t.stats["cached"] if t else 0
            return
        log.info(
            "audio calls: %d/%d (%s from the cache, %.1f of max_audio_minutes %g used, %.0f s)",
            self.k,
            self.total,
            t.stats["cached"],
            t.used_seconds / 60,
            t.max_minutes,
            time.perf_counter() - self.started,
        )

    def done(self) -> None:
        t = self.transcriber
        if t is not None and self.total:
            log.info(
                "audio calls: %d recordings, %d from the cache, %d transcribed",
                self.total,
                t.stats["cached"],
                t.stats["transcribed"],
            )


# --------------------------------------------------------------------------- accuracy
#: The shipped demo recordings (``customer_analytics.synthetic.render_demo_audio`` made them).
DEMO_AUDIO = Path(__file__).with_name("demo_audio")


def demo_clips() -> list[dict]:
    """The shipped demo recordings: ``file``, ``theme``, ``text`` (what is said), ``voice``,
    ``seconds``."""
    manifest = DEMO_AUDIO / "manifest.json"
    return json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else []


def words(text: str) -> list[str]:
    """Lower-case words of a transcript (punctuation dropped) for the word error rate."""
    return _WORD.findall(text.lower().replace("’", "'"))


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions + deletions + insertions)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def word_error_rate(pairs: Iterable[tuple[str, str]]) -> tuple[float, int]:
    """Corpus word error rate of ``(reference, hypothesis)`` pairs, and the number of reference
    words."""
    errors = n = 0
    for ref, hyp in pairs:
        r = words(ref)
        errors += edit_distance(r, words(hyp))
        n += len(r)
    return (errors / n if n else math.nan), n


def demo_benchmark(transcriber: Transcriber) -> dict:
    """Word error rate of ``transcriber``'s recognizer on the shipped demo recordings (their spoken
    text
    is known: ``demo_audio/manifest.json``). Cached like any recording, so the demo's own calls cost
    nothing here. Returns ``recognizer``, ``wer``, ``words``, ``clips``, ``seconds``."""
    clips = demo_clips()
    results = [transcriber.transcribe(DEMO_AUDIO / c["file"]) for c in clips]
    wer, n = word_error_rate((c["text"], r.text or "") for c, r in zip(clips, results, strict=True))
    return {
        "recognizer": results[0].recognizer if results else transcriber.spec,
        "wer": wer,
        "words": n,
        "clips": len(clips),
        "seconds": sum(c["seconds"] for c in clips),
    }


def calls_frame(session) -> pd.DataFrame:
    """Per outcome of this run's audio calls (transcribed or the rejection reason): recordings,
    minutes and
    mean confidence; from ``RAW_CALLS`` (aggregates only)."""
    import snowflake.snowpark.functions as F

    from customer_analytics import warehouse as wh

    if not wh.table_exists(session, "RAW_CALLS"):
        return pd.DataFrame(columns=["recordings", "minutes", "mean confidence"])
    raw = session.table("RAW_CALLS")
    if "RECOGNIZER" not in raw.columns:
        return pd.DataFrame(columns=["recordings", "minutes", "mean confidence"])
    rows = (
        raw.filter(F.col("RECOGNIZER").is_not_null())
        .group_by(F.coalesce(F.col("READ_REASON"), F.lit("transcribed")).alias("OUTCOME"))
        .agg(
            F.count(F.lit(1)).alias("RECORDINGS"),
            F.sum(F.col("AUDIO_SECONDS").cast("double")).alias("SECONDS"),
            F.avg(F.col("CONFIDENCE").cast("double")).alias("CONFIDENCE"),
        )
    )
    out = wh.to_pandas(rows.sort("OUTCOME"), "audio:calls").set_index("OUTCOME")
    out.index.name = "outcome"
    return pd.DataFrame(
        {
            "recordings": out["RECORDINGS"],
            "minutes": (out["SECONDS"].astype(float) / 60).round(2),
            "mean confidence": out["CONFIDENCE"].astype(float).round(3),
        }
    )


def summarise(session, params) -> tuple[pd.DataFrame, dict | None]:
    """The run's audio calls (:func:`calls_frame`) and, when there are any, the recognizer's word
    error
    rate on the demo recordings (:func:`demo_benchmark`, with the run's recognizer and cache)."""
    frame = calls_frame(session)
    return frame, demo_benchmark(transcriber(settings(params))) if len(frame) else None
