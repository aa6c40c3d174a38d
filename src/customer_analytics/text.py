"""Review and call-transcript sentiment: a scikit-learn text model, scored in the warehouse.

* **Model.** Binary bag-of-words (``CountVectorizer(binary=True)``) + logistic regression,
  trained to tell a *positive* review (rating >= :data:`POSITIVE_RATING`) from the others, on a
  bounded, seeded sample of the rated reviews written before ``trained_before`` (the earliest
  training cut-off, so that no cut-off's features depend on anything written after it).
* **Scoring, pushed down.** The fitted model is linear in the presence of each vocabulary word,
  so its decision function is ``intercept + sum(weight of each distinct known token)``. The
  weights go to a small table (:data:`WEIGHTS_TABLE`, one row per word); every text — rated or
  not, reviews and call transcripts alike — is tokenised, joined with the weights and summed
  *in the warehouse* into :data:`SCORES_TABLE`. Only the training sample comes to the client.
  Tokens are runs of ASCII letters/digits (2+ characters) after lower-casing, a definition both
  scikit-learn (``token_pattern``) and SQL (``REGEXP_REPLACE`` + ``SPLIT``) implement
  identically; a test checks the warehouse's scores against ``decision_function``.
* **Evaluation.** Out of time: accuracy on every rated review written on or after
  ``trained_before`` (computed in the warehouse from the pushed-down scores), against the
  accuracy of always predicting the majority class of the training sample.

``CLEAN_REVIEWS`` may be empty or hold too few rated reviews: :func:`train` then returns a
:class:`TextModel` without a pipeline and a reason, and the features are built without sentiment.
If ``CLEAN_REVIEWS`` has a ``KIND`` column ('review' | 'call'), only reviews train the model;
every text is scored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import snowflake.snowpark.functions as F
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from snowflake.snowpark import Column, DataFrame, Session

from customer_analytics import portable as pt
from customer_analytics import warehouse as wh

log = logging.getLogger(__name__)

SOURCE_TABLE = "CLEAN_REVIEWS"
WEIGHTS_TABLE = "SENTIMENT_WEIGHTS"
SCORES_TABLE = "TEXT_SENTIMENT"
POSITIVE_RATING = 4
#: scikit-learn's token definition; :data:`SEPARATOR` is its complement for SQL.
TOKEN_PATTERN = r"[a-z0-9]{2,}"
SEPARATOR = "[^a-z0-9]+"
MIN_TRAIN_ROWS = 30
MAX_VOCABULARY = 5000
REPORT_MIN_DOCS = 10
REPORT_MIN_SHARE = 0.01
DECIMALS = 9
DEFAULT_KIND = "review"


@dataclasses.dataclass
class TextModel:
    """The sentiment model of a run, or the reason there is none.

    Attributes:
        pipeline: fitted scikit-learn pipeline (``None`` when no model could be trained).
        trained_before: only reviews written before this date were used for training.
        n_train: rated reviews in the training sample.
        positive_share: share of positive reviews in the training sample.
        reason: why there is no model (empty when there is one).
    """

    pipeline: Pipeline | None
    trained_before: dt.date
    n_train: int = 0
    positive_share: float = float("nan")
    reason: str = ""
    doc_freq: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def available(self) -> bool:
        return self.pipeline is not None

    def weights(self) -> pd.DataFrame:
        """One row per vocabulary word with a non-zero weight: ``TOKEN``, ``WEIGHT``."""
        assert self.pipeline is not None, "weights of a trained model"
        bow, clf = self.pipeline.named_steps["bow"], self.pipeline.named_steps["clf"]
        out = pd.DataFrame(
            {"TOKEN": bow.get_feature_names_out(), "WEIGHT": clf.coef_[0].astype(float)}
        )
        return out[out["WEIGHT"] != 0].sort_values("TOKEN").reset_index(drop=True)

    @property
    def intercept(self) -> float:
        assert self.pipeline is not None, "intercept of a trained model"
        return float(self.pipeline.named_steps["clf"].intercept_[0])

    def top_words(self, n: int = 8) -> pd.DataFrame:
        """The most positive and most negative words with their weights (for the report).

        Only words used in at least :data:`REPORT_MIN_SHARE` of the training reviews (and at least
        :data:`REPORT_MIN_DOCS` of them) are shown, so a rare word such as a person's name never
        reaches a report.
        """
        common = {
            t
            for t, k in self.doc_freq.items()
            if k >= max(REPORT_MIN_DOCS, REPORT_MIN_SHARE * self.n_train)
        }
        w = self.weights().set_index("TOKEN")["WEIGHT"]
        w = w[w.index.isin(common)]
        pos, neg = w.nlargest(n), w.nsmallest(n)
        return pd.DataFrame(
            {
                "positive word": pos.index,
                "weight (+)": pos.to_numpy().round(2),
                "negative word": neg.index,
                "weight (-)": neg.to_numpy().round(2),
            }
        )


def has_kind(session: Session) -> bool:
    """Whether ``CLEAN_REVIEWS`` tells reviews from call transcripts (a ``KIND`` column)."""
    return "KIND" in session.table(SOURCE_TABLE).columns


def kind_column(session: Session) -> Column:
    """The text's kind: the ``KIND`` column, or 'review' for every row when there is none."""
    return (
        F.coalesce(F.col("KIND"), F.lit(DEFAULT_KIND)) if has_kind(session) else F.lit(DEFAULT_KIND)
    )


def text_key(session: Session) -> list[str]:
    """Columns that identify one text (LINE_NO alone is unique per source file only)."""
    return ["CUSTOMER_ID", "TS", "LINE_NO"] + (["KIND"] if has_kind(session) else [])


def with_sample_order(df: DataFrame, key: list[str], seed: int) -> DataFrame:
    """``df`` with ``_ORDER``, a text's place in the seeded training sample:
    :func:`portable.stable_hash` of its key.

    Timestamps enter as whole seconds since 1970, so that the same texts are drawn on Snowflake,
    on the local warehouse and in pandas (``portable.stable_hash_py``).
    """
    parts = [pt.epoch_seconds(F.col(c)) if c == "TS" else F.col(c) for c in key]
    return pt.with_stable_hash(df, "_ORDER", *parts, F.lit(seed))


def training_sample(session: Session, before: dt.date, max_rows: int, seed: int) -> pd.DataFrame:
    """A seeded, bounded sample of rated reviews written before ``before``: ``TEXT``, ``POSITIVE``.

    The sample is drawn in the warehouse (ordered by a seeded hash of the review's key), so at
    most ``max_rows`` rows come to the client.
    """
    df: DataFrame = session.table(SOURCE_TABLE)
    df = df.filter(
        F.col("RATING").is_not_null()
        & F.col("TEXT").is_not_null()
        & (F.col("TS") < pt.timestamp_literal(before))
    )
    if has_kind(session):
        df = df.filter(kind_column(session) == F.lit(DEFAULT_KIND))
    key = text_key(session)
    df = (
        with_sample_order(df.select(*key, "TEXT", "RATING"), key, seed)
        .sort("_ORDER", *key)
        .limit(max_rows)
    )
    out = wh.to_pandas(df, "text:training_sample").sort_values(["_ORDER", *key], kind="stable")
    out["POSITIVE"] = (out["RATING"] >= POSITIVE_RATING).astype(int)
    return out[["TEXT", "POSITIVE"]].reset_index(drop=True)


def make_pipeline(seed: int) -> Pipeline:
    """Binary bag-of-words + L2 logistic regression (linear, so it can be scored in SQL)."""
    return Pipeline(
        [
            (
                "bow",
                CountVectorizer(
                    binary=True,
                    lowercase=True,
                    token_pattern=TOKEN_PATTERN,
                    min_df=2,
                    max_features=MAX_VOCABULARY,
                    dtype=np.float64,
                ),
            ),
            ("clf", LogisticRegression(C=1.0, max_iter=2000, random_state=seed)),
        ]
    )


def train(session: Session, before: dt.date, seed: int, max_rows: int) -> TextModel:
    """Fit the sentiment model on rated reviews written before ``before`` (see the module doc).

    Returns a :class:`TextModel` whose ``pipeline`` is ``None`` (with a ``reason``) when there are
    fewer than :data:`MIN_TRAIN_ROWS` rated reviews or only one class.
    """
    sample = training_sample(session, before, max_rows, seed)
    if len(sample) < MIN_TRAIN_ROWS:
        why = (
            f"only {len(sample)} rated reviews were written before {before} "
            f"(at least {MIN_TRAIN_ROWS} are needed to train a sentiment model)"
        )
        log.warning("no sentiment model: %s", why)
        return TextModel(None, before, len(sample), reason=why)
    if sample["POSITIVE"].nunique() < 2:
        why = f"the {len(sample)} rated reviews written before {before} all fall in one class"
        log.warning("no sentiment model: %s", why)
        return TextModel(None, before, len(sample), reason=why)
    pipe = make_pipeline(seed).fit(sample["TEXT"], sample["POSITIVE"])
    bow = pipe.named_steps["bow"]
    counts = np.asarray(bow.transform(sample["TEXT"]).sum(axis=0)).ravel()
    log.info("sentiment model: %d rated reviews, %d words", len(sample), len(bow.vocabulary_))
    return TextModel(
        pipe,
        before,
        len(sample),
        float(sample["POSITIVE"].mean()),
        doc_freq={t: int(counts[i]) for t, i in bow.vocabulary_.items()},
    )


def build(
    session: Session, before: dt.date, seed: int, max_rows: int, staging_dir: Path | None = None
) -> tuple[TextModel, pd.DataFrame | None]:
    """Train the sentiment model, score every text in the warehouse and test it out of time.

    Returns the model and its :func:`evaluate` table (``None`` when no model could be trained;
    the model's ``reason`` then says why).
    """
    model = train(session, before, seed, max_rows)
    if not model.available:
        return model, None
    score_texts(session, model, staging_dir)
    return model, evaluate(session, model)


def tokens(texts: DataFrame, key: list[str]) -> DataFrame:
    """Distinct (text, token) pairs of ``texts``: lower-cased, split on :data:`SEPARATOR`."""
    norm = F.call_function("REGEXP_REPLACE", F.lower(F.col("TEXT")), F.lit(SEPARATOR), F.lit(" "))
    words = texts.select(*key, F.split(F.trim(norm), F.lit(" ")).alias("WORDS"))
    flat = words.join_table_function("flatten", F.col("WORDS"))
    return flat.select(*key, F.col("VALUE").cast("string").alias("TOKEN")).distinct()


def score_texts(session: Session, model: TextModel, staging_dir: Path | None = None) -> str:
    """Score every text of ``CLEAN_REVIEWS`` in the warehouse into :data:`SCORES_TABLE`.

    Columns: the text's key, ``KIND``, ``RATING``, ``SENTIMENT_LOGIT`` (the model's decision
    function) and ``SENTIMENT`` (its probability of a positive review).
    """
    if not model.available:
        raise ValueError(f"No sentiment model to score texts with: {model.reason}.")
    weights = session.table(wh.write_pandas(session, model.weights(), WEIGHTS_TABLE, staging_dir))
    key = text_key(session)
    texts = session.table(SOURCE_TABLE).filter(F.col("TEXT").is_not_null())
    contrib = (
        tokens(texts, key)
        .join(weights, "TOKEN")
        .group_by(*key)
        .agg(F.sum(F.col("WEIGHT")).alias("W"))
    )
    # rounded so that the value does not depend on the order the warehouse sums the weights in
    logit = F.round(F.lit(model.intercept) + F.coalesce(F.col("W"), F.lit(0.0)), DECIMALS)
    scored = texts.join(contrib, key, "left").select(
        *[F.col(c) for c in key if c != "KIND"],
        kind_column(session).alias("KIND"),
        F.col("RATING"),
        logit.alias("SENTIMENT_LOGIT"),
        (F.lit(1.0) / (F.lit(1.0) + F.exp(-logit))).alias("SENTIMENT"),
    )
    return wh.replace_table(scored, SCORES_TABLE)


def evaluate(session: Session, model: TextModel) -> pd.DataFrame:
    """Out-of-time accuracy on rated reviews written on or after ``trained_before`` (one small row).

    Returns the number of test reviews, the model's accuracy, the accuracy of always predicting
    the training sample's majority class, and precision/recall of "negative" (what a support team
    would act on).
    """
    since = pt.timestamp_literal(model.trained_before)
    df = session.table(SCORES_TABLE).filter(
        (F.col("TS") >= since)
        & F.col("RATING").is_not_null()
        & (F.col("KIND") == F.lit(DEFAULT_KIND))
    )
    pos = F.col("RATING") >= F.lit(POSITIVE_RATING)
    pred = F.col("SENTIMENT_LOGIT") >= F.lit(0.0)
    one, zero = F.lit(1), F.lit(0)
    row = df.agg(
        F.count(one).alias("N"),
        F.sum(F.iff(pos == pred, one, zero)).alias("CORRECT"),
        F.sum(F.iff(pos, one, zero)).alias("POSITIVE"),
        F.sum(F.iff(~pos & ~pred, one, zero)).alias("TRUE_NEG"),
        F.sum(F.iff(~pred, one, zero)).alias("PRED_NEG"),
    ).collect()[0]
    n = int(row["N"] or 0)
    majority_positive = model.positive_share >= 0.5
    neg = n - int(row["POSITIVE"] or 0)
    out = {
        "rated reviews tested": n,
        "accuracy": (row["CORRECT"] or 0) / n if n else float("nan"),
        "majority-class accuracy": ((row["POSITIVE"] or 0) if majority_positive else neg) / n
        if n
        else float("nan"),
        "precision (negative)": (row["TRUE_NEG"] or 0) / row["PRED_NEG"]
        if row["PRED_NEG"]
        else float("nan"),
        "recall (negative)": (row["TRUE_NEG"] or 0) / neg if neg else float("nan"),
    }
    return pd.Series(out, name=f"written on or after {model.trained_before}").to_frame()


def by_kind(session: Session) -> pd.DataFrame:
    """Texts and mean sentiment per kind and rating status (aggregates, for the report)."""
    df = session.table(SCORES_TABLE).with_column(
        "RATED", F.iff(F.col("RATING").is_not_null(), F.lit("rated"), F.lit("unrated"))
    )
    out = wh.to_pandas(
        df.group_by("KIND", "RATED")
        .agg(
            F.count(F.lit(1)).alias("TEXTS"),
            pt.mean(F.col("SENTIMENT")).alias("MEAN_SENTIMENT"),
            pt.mean(F.iff(F.col("SENTIMENT_LOGIT") < F.lit(0.0), F.lit(1.0), F.lit(0.0))).alias(
                "SHARE_NEGATIVE"
            ),
        )
        .sort("KIND", "RATED"),
        "text:by_kind",
    )
    out.columns = [c.lower() for c in out.columns]
    return out.set_index(["kind", "rated"])
