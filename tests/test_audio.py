"""Audio support calls (issue 20): offline transcription, its rejections, cache and budget, the
ingest's
accounting and the 01 report's word error rate. Real recordings (the shipped demo clips), real
decoders,
the real PocketSphinx model."""

from __future__ import annotations

import shutil
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from conftest import make_params, outputs_text, run_interactively, scratch_project
from customer_analytics import audio, contract, ingest, synthetic
from customer_analytics import warehouse as wh

R = contract.Reason
CLIPS = audio.demo_clips()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A transcript cache filled once with the shipped clips (the module's tests share it)."""
    folder = tmp_path_factory.mktemp("transcripts")
    t = audio.Transcriber(cache_dir=folder)
    results = [t.transcribe(audio.DEMO_AUDIO / c["file"]) for c in CLIPS]
    assert t.stats == {"cached": 0, "transcribed": len(CLIPS)}
    return folder, results


def test_the_shipped_clips_are_transcribed_with_a_measured_word_error_rate(cache):
    folder, results = cache
    assert len(CLIPS) >= 6 and sum(c["seconds"] for c in CLIPS) < 120  # the demo audio stays small
    assert all(r.reason is None and r.text and 0 <= r.confidence <= 1 for r in results)
    assert all(r.recognizer.startswith("pocketsphinx 5.") for r in results)
    wer, n = audio.word_error_rate((c["text"], r.text) for c, r in zip(CLIPS, results, strict=True))
    assert n > 100 and 0 < wer < 0.8  # measured, not assumed: the report says the figure
    bench = audio.demo_benchmark(audio.Transcriber(cache_dir=folder))
    assert bench["wer"] == pytest.approx(wer) and bench["clips"] == len(CLIPS)
    assert audio.word_error_rate([("the parcel arrived broken", "the parcel arrived")])[
        0
    ] == pytest.approx(0.25)


def test_transcripts_are_cached_by_content_and_do_not_depend_on_order(cache, tmp_path):
    folder, results = cache
    renamed = tmp_path / "C000001_2026-01-02_x.flac"
    shutil.copy(audio.DEMO_AUDIO / CLIPS[2]["file"], renamed)
    t = audio.Transcriber(cache_dir=folder)
    again = t.transcribe(renamed)
    assert (
        again.cached and again.text == results[2].text and t._recognizer is None
    )  # no model loaded
    fresh = (
        audio.Transcriber()
    )  # no cache, another order: the same words (the decoder is reset per file)
    assert [fresh.transcribe(audio.DEMO_AUDIO / c["file"]).text for c in CLIPS[2::-1]] == [
        r.text for r in results[2::-1]
    ]


def test_other_rates_channels_and_formats_are_resampled_and_mixed_down(cache, tmp_path):
    _, results = cache
    x, rate = sf.read(str(audio.DEMO_AUDIO / CLIPS[0]["file"]), dtype="float64")
    from scipy.signal import resample_poly

    stereo = np.stack([resample_poly(x, 441, 160)] * 2, axis=1)  # 44.1 kHz, two channels
    for name, fmt in (("a.wav", "WAV"), ("a.ogg", "OGG"), ("a.mp3", "MP3")):
        sf.write(str(tmp_path / name), stereo * 0.9, 44100, format=fmt)
        r = audio.Transcriber().transcribe(tmp_path / name)
        assert r.reason is None, (name, r.detail)
        assert "44100 Hz, 2 channel(s)" in r.detail
        wer, _ = audio.word_error_rate([(CLIPS[0]["text"], r.text)])
        assert wer < 0.8, (name, r.text)


def test_unusable_recordings_are_rejected_with_their_reason(tmp_path):
    (tmp_path / "garbage.wav").write_bytes(b"RIFF not really a wave file" * 10)
    (tmp_path / "empty.mp3").write_bytes(b"")
    sf.write(str(tmp_path / "silent.wav"), np.zeros(16000 * 2), 16000)
    sf.write(str(tmp_path / "tiny.wav"), np.full(400, 0.5), 16000)  # 25 ms
    sf.write(str(tmp_path / "low_rate.wav"), np.zeros(4000), 4000)
    flac = (audio.DEMO_AUDIO / CLIPS[0]["file"]).read_bytes()
    (tmp_path / "cut.flac").write_bytes(flac[:200])
    t = audio.Transcriber(cache_dir=tmp_path / "cache")
    got = {p.name: t.transcribe(p) for p in sorted(tmp_path.glob("*.*"))}
    assert {k: v.reason for k, v in got.items()} == {
        "garbage.wav": R.UNREADABLE_AUDIO,
        "empty.mp3": R.UNREADABLE_AUDIO,
        "silent.wav": R.SILENT_AUDIO,
        "tiny.wav": R.SILENT_AUDIO,
        "low_rate.wav": R.UNREADABLE_AUDIO,
        "cut.flac": R.UNREADABLE_AUDIO,
    }
    assert all(v.text is None and v.detail for v in got.values())
    assert all(r in contract.REASONS for r in contract.AUDIO_REASONS)


RECOGNIZER = '''
class Silent:
    """A recognizer that never hears a word (what a plug-in looks like)."""
    name = "silent-test 1.0"

    def transcribe(self, chunks):
        self.samples = sum(len(c) for c in chunks)
        return "", None


def make():
    return Silent()
'''


def test_the_recognizer_is_pluggable_and_a_file_without_words_is_rejected(tmp_path, monkeypatch):
    (tmp_path / "my_recognizer.py").write_text(textwrap.dedent(RECOGNIZER))
    monkeypatch.syspath_prepend(str(tmp_path))
    t = audio.Transcriber("my_recognizer:make", cache_dir=tmp_path / "cache")
    r = t.transcribe(audio.DEMO_AUDIO / CLIPS[0]["file"])
    assert (r.reason, r.recognizer) == (R.NO_SPEECH, "silent-test 1.0")
    assert t.engine.samples == pytest.approx(
        CLIPS[0]["seconds"] * audio.RATE, abs=audio.RATE * 0.05
    )
    with pytest.raises(Exception, match="audio_recognizer"):
        audio.recognizer("not a spec")
    sys.modules.pop("my_recognizer", None)


def test_the_budget_leaves_new_audio_for_a_later_run(cache, tmp_path):
    folder, results = cache
    new = tmp_path / "new.flac"
    shutil.copy(audio.DEMO_AUDIO / CLIPS[1]["file"], new)
    fresh_cache = tmp_path / "cache"
    first = audio.Transcriber(cache_dir=fresh_cache, max_minutes=0.05)  # 3 s of new audio
    r = first.transcribe(new)
    assert (
        r.reason == R.AUDIO_BUDGET
        and "max_audio_minutes" in r.detail
        and first.stats["transcribed"] == 0
    )
    second = audio.Transcriber(cache_dir=fresh_cache, max_minutes=10)  # not cached: transcribed now
    assert second.transcribe(new).text == results[1].text
    assert (
        audio.Transcriber(cache_dir=folder, max_minutes=0).transcribe(new).text == results[1].text
    )  # cached


@pytest.fixture(scope="module")
def demo_with_audio(tmp_path_factory, cache):
    """Demo data with every shipped recording given to a call, plus four unusable recordings."""
    raw = tmp_path_factory.mktemp("audio_raw")
    counts = synthetic.write(
        synthetic.generate(900, seed=11), raw, calls=True, audio_clips=len(CLIPS)
    )
    calls = raw / "calls"
    stem = next(calls.glob("*.txt")).stem  # a real customer and date
    sf.write(str(calls / f"{stem}_silent.wav"), np.zeros(16000), 16000)
    (calls / f"{stem}_broken.mp3").write_bytes(b"ID3 but nothing after")
    (calls / f"{stem}_cut.flac").write_bytes(
        (audio.DEMO_AUDIO / CLIPS[0]["file"]).read_bytes()[:300]
    )
    shutil.copy(
        audio.DEMO_AUDIO / CLIPS[3]["file"], calls / "NOBODY_2026-01-05.flac"
    )  # unknown customer
    warehouse = tmp_path_factory.mktemp("audio_wh")
    shutil.copytree(
        cache[0], warehouse / audio.CACHE_FOLDER
    )  # the clips were transcribed once already
    p = make_params(raw, warehouse, max_reject_share=0.2)
    s = wh.connect(p)
    result = ingest.run(s, p)
    yield s, p, {c.source: c for c in result}, counts
    s.close()
    wh.stop_local_server(p.warehouse_dir)


def test_every_audio_file_is_transcribed_into_the_calls_or_rejected_with_a_reason(demo_with_audio):
    s, p, counts, written = demo_with_audio
    folder = p.data_dir / p.calls_dir
    recordings = audio.audio_files(folder)
    files = sorted(f.name for f in folder.iterdir())
    assert written["audio_calls"] == len(CLIPS) and len(recordings) == len(CLIPS) + 4
    c = counts["calls"]
    assert c.read == len(files) == c.accepted + c.rejected  # rows read = accepted + rejected
    clean = s.sql(
        "SELECT SOURCE_FILE, TEXT, RECOGNIZER, CONFIDENCE FROM CLEAN_REVIEWS "
        "WHERE RECOGNIZER IS NOT NULL"
    ).to_pandas()
    rejected = s.sql(
        "SELECT SOURCE_FILE, FIELD, REASON FROM REJECTED_REVIEWS WHERE SOURCE_FILE LIKE 'calls/%'"
    ).to_pandas()
    names = {f"calls/{r.name}" for r in recordings}
    assert set(clean["SOURCE_FILE"]) | set(rejected["SOURCE_FILE"]) >= names
    assert not set(clean["SOURCE_FILE"]) & set(rejected["SOURCE_FILE"])
    assert (
        len(clean) == len(CLIPS) and clean["TEXT"].str.len().gt(0).all()
    )  # the unknown customer's is rejected
    assert (
        clean["RECOGNIZER"].str.startswith("pocketsphinx").all()
        and clean["CONFIDENCE"].between(0, 1).all()
    )
    reasons = rejected.set_index("SOURCE_FILE")["REASON"].to_dict()
    assert sorted(reasons.values()) == sorted(
        [R.SILENT_AUDIO, R.UNREADABLE_AUDIO, R.UNREADABLE_AUDIO, R.UNKNOWN_CUSTOMER]
    )
    assert c.reasons == {R.SILENT_AUDIO: 1, R.UNREADABLE_AUDIO: 2, R.UNKNOWN_CUSTOMER: 1}
    # RAW_CALLS keeps what the recording was (format, rate, duration), never a transcript of a
    # rejected one
    raw = s.sql("SELECT RECORD FROM RAW_CALLS WHERE RECOGNIZER IS NOT NULL").to_pandas()
    assert raw["RECORD"].str.startswith("audio: ").all()


@pytest.mark.slow
def test_the_01_report_states_the_recognizer_and_its_measured_word_error_rate(
    demo_with_audio, cache, tmp_path
):
    _, p, _, _ = demo_with_audio
    project = scratch_project(tmp_path / "project")
    warehouse = tmp_path / "wh"
    shutil.copytree(cache[0], warehouse / audio.CACHE_FOLDER)
    nb = run_interactively(
        project,
        "01_ingest",
        data_dir=str(p.data_dir),
        warehouse_dir=str(warehouse),
        max_reject_share=0.2,
    )
    wh.stop_local_server(warehouse)
    shown = outputs_text(nb)
    bench = audio.demo_benchmark(audio.Transcriber(cache_dir=cache[0]))
    assert f"Recognizer: **{bench['recognizer']}**" in shown
    assert f"word error rate, measured on the {len(CLIPS)} shipped demo recordings" in shown
    assert f"is **{bench['wer']:.0%}**" in shown
    assert f"**{len(CLIPS) + 4} audio calls**" in shown and R.SILENT_AUDIO in shown
