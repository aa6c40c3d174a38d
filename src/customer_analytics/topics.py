"""Text embeddings, topics and similar-text search, computed in the warehouse.

* **Embeddings, without downloads.** TF-IDF over the shop's own review and call texts (binary
  term presence, English stop words left out, words in at least :data:`MIN_DF` texts and at most
  :data:`MAX_DF` of them), reduced by a truncated SVD to :data:`N_DIMS` dimensions (latent
  semantic analysis: words that occur in the same texts end up close, so "the box was crushed"
  lands near "the parcel arrived broken" without a word in common) and L2-normalised.
  Fitted with scikit-learn on a seeded, bounded sample (``text_max_rows``) of the texts written
  before ``before``; nothing is downloaded.
* **Pushed down.** The embedding of a text is linear in the presence of its words:
  ``normalise(sum over its distinct known words of idf(word) * component(word))``. Those weights
  go to a small table (``EMBEDDING_WEIGHTS``: word, dimension, weight) and every text is embedded
  in the warehouse with the same tokens as the sentiment model (:func:`text.tokens`), into
  ``TEXT_EMBEDDINGS`` (one row per text and dimension; on Snowflake also ``TEXT_VECTORS``, one
  ``VECTOR(FLOAT, N_DIMS)`` per text). A test checks them against scikit-learn's own transform.
* **Topics.** k-means (``text_topics`` clusters, seeded) on the sample's embeddings; each text
  goes to its nearest centre, computed in the warehouse (``TEXT_TOPICS``). A topic is described
  by its most typical words (words of at least :data:`REPORT_MIN_DOCS` texts only, so no
  customer's name can show), its share of the texts, the mean rating of its rated reviews and
  its trend: share over the last :data:`RECENT_DAYS` days against the same span before.
* **Search.** :func:`similar` embeds a query with the same weights and ranks the texts by cosine
  similarity in the warehouse (embeddings are unit vectors: a dot product; on Snowflake
  ``VECTOR_COSINE_SIMILARITY``), returning dates, kinds, ratings, topics and texts: never a
  customer id or name.
* **Features.** :func:`customer_shares` gives, per customer and cut-off, the share of their texts
  written before the cut-off in each topic. The feature stage fits its own topic model on texts
  written before the earliest cut-off (:data:`FEATURE`), so no cut-off's features depend on
  later text; the EDA and the search use one fitted on every text before the run date
  (:data:`SEARCH`).

A text is identified by ``TEXT_ID`` = ``SOURCE_FILE#LINE_NO`` (unique in ``CLEAN_REVIEWS``). A text
with no known word has no embedding and no topic.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import snowflake.snowpark.functions as F
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize
from snowflake.snowpark import Column, DataFrame, Session
from snowflake.snowpark.window import Window

from customer_analytics import portable as pt
from customer_analytics import text
from customer_analytics import warehouse as wh

log = logging.getLogger(__name__)

N_DIMS = 20
MIN_DF = 3
MAX_DF = 0.5
MAX_VOCABULARY = 5000
MIN_TEXTS = 50
REPORT_MIN_DOCS = 10
RECENT_DAYS = 90
DECIMALS = 9
TOP_WORDS = 6
SHARE_PREFIX = "TOPIC_SHARE_"


@dataclasses.dataclass(frozen=True)
class Tables:
    """The warehouse tables of one topic model (prefix: '' for the EDA and search, FEATURE_ for
    03)."""

    prefix: str

    def __getattr__(self, item: str) -> str:
        names = {
            "weights": "EMBEDDING_WEIGHTS",
            "centroids": "TOPIC_CENTROIDS",
            "embeddings": "TEXT_EMBEDDINGS",
            "topics": "TEXT_TOPICS",
            "vectors": "TEXT_VECTORS",
            "words": "TOPIC_WORDS",
        }
        if item not in names:
            raise AttributeError(item)
        return self.prefix + names[item]


SEARCH = Tables("")
FEATURE = Tables("FEATURE_")


@dataclasses.dataclass
class TopicModel:
    """The fitted embedding and topic model of a run, or the reason there is none."""

    vectorizer: TfidfVectorizer | None
    svd: TruncatedSVD | None
    kmeans: KMeans | None
    trained_before: dt.date
    n_train: int = 0
    reason: str = ""
    doc_freq: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def available(self) -> bool:
        return self.kmeans is not None

    def fitted(self) -> tuple[TfidfVectorizer, TruncatedSVD, KMeans]:
        """The three fitted parts; only for an :attr:`available` model."""
        if self.vectorizer is None or self.svd is None or self.kmeans is None:
            raise ValueError(f"no topic model: {self.reason}")
        return self.vectorizer, self.svd, self.kmeans

    @property
    def n_topics(self) -> int:
        return int(self.fitted()[2].n_clusters) if self.available else 0

    @property
    def n_dims(self) -> int:
        return int(self.fitted()[1].n_components) if self.available else 0

    def embed(self, texts: pd.Series | list[str]) -> np.ndarray:
        """Unit-length embeddings of ``texts`` on the client (zero rows for texts with no known
        word)."""
        vectorizer, svd, _ = self.fitted()
        return normalize(svd.transform(vectorizer.transform(list(texts))))

    def weights(self) -> pd.DataFrame:
        """``TOKEN``, ``DIM``, ``WEIGHT`` = idf(token) * SVD component (the pushed-down
        embedding)."""
        vectorizer, svd, _ = self.fitted()
        vocab = vectorizer.get_feature_names_out()
        w = svd.components_ * vectorizer.idf_[None, :]
        dims, toks = np.nonzero(w)
        return pd.DataFrame(
            {"TOKEN": vocab[toks], "DIM": dims.astype(int), "WEIGHT": w[dims, toks].astype(float)}
        )

    def centroids(self) -> pd.DataFrame:
        """``TOPIC``, ``DIM``, ``VALUE``: the k-means centres (topics numbered from 1)."""
        kmeans = self.fitted()[2]
        c = kmeans.cluster_centers_
        topic, dim = np.meshgrid(np.arange(c.shape[0]), np.arange(c.shape[1]), indexing="ij")
        return pd.DataFrame(
            {"TOPIC": topic.ravel() + 1, "DIM": dim.ravel(), "VALUE": c.ravel().astype(float)}
        )

    def predict(self, texts: pd.Series | list[str]) -> np.ndarray:
        """Topic (1..k) of each text on the client; 0 for a text with no known word."""
        kmeans = self.fitted()[2]
        e = self.embed(texts)
        out = kmeans.predict(e) + 1
        return np.where(np.abs(e).sum(axis=1) > 0, out, 0)

    def top_words(self, n: int = TOP_WORDS) -> dict[int, list[str]]:
        """The most typical words of each topic (those of at least :data:`REPORT_MIN_DOCS`
        texts)."""
        vectorizer, svd, kmeans = self.fitted()
        vocab = vectorizer.get_feature_names_out()
        common = np.array([self.doc_freq.get(t, 0) >= REPORT_MIN_DOCS for t in vocab])
        term = kmeans.cluster_centers_ @ svd.components_
        out = {}
        for k, row in enumerate(term, 1):
            order = [i for i in np.argsort(-row) if common[i] and row[i] > 0]
            out[k] = [str(vocab[i]) for i in order[:n]]
        return out

    def labels(self) -> dict[int, str]:
        """A short label per topic: its three most typical words."""
        return {k: " · ".join(w[:3]) or f"topic {k}" for k, w in self.top_words().items()}


def text_id(df: DataFrame | None = None) -> Column:
    """``SOURCE_FILE#LINE_NO``: the identifier of a text of ``CLEAN_REVIEWS``."""
    return F.concat(F.col("SOURCE_FILE"), F.lit("#"), F.col("LINE_NO").cast("string"))


def training_sample(session: Session, before: dt.date, max_rows: int, seed: int) -> pd.Series:
    """A seeded sample of at most ``max_rows`` texts (reviews and calls) written before ``before``.

    Drawn in the warehouse (ordered by a seeded hash of the text's id), like the sentiment model's.
    """
    df = session.table(text.SOURCE_TABLE).filter(
        F.col("TEXT").is_not_null() & (F.col("TS") < pt.timestamp_literal(before))
    )
    df = df.select(text_id().alias("TEXT_ID"), "TEXT")
    # the same rows on both backends (not HASH)
    df = pt.with_stable_hash(df, "_ORDER", F.col("TEXT_ID"), F.lit(seed)).sort("_ORDER", "TEXT_ID")
    out = wh.to_pandas(df.limit(max_rows), "topics:training_sample").sort_values(
        ["_ORDER", "TEXT_ID"]
    )
    return out["TEXT"].reset_index(drop=True)


def fit(texts: pd.Series, n_topics: int, seed: int, before: dt.date) -> TopicModel:
    """Fit TF-IDF + truncated SVD + k-means on ``texts`` (see the module doc).

    Returns a model without estimators (and a ``reason``) when there are too few texts or words.
    """
    if len(texts) < max(MIN_TEXTS, 3 * n_topics):
        why = (
            f"only {len(texts)} texts were written before {before} (at least "
            f"{max(MIN_TEXTS, 3 * n_topics)} are needed for {n_topics} topics)"
        )
        log.warning("no topic model: %s", why)
        return TopicModel(None, None, None, before, len(texts), why)
    vec = TfidfVectorizer(
        binary=True,
        lowercase=True,
        token_pattern=text.TOKEN_PATTERN,
        stop_words="english",
        min_df=MIN_DF,
        max_df=MAX_DF,
        max_features=MAX_VOCABULARY,
        dtype=np.float64,
    )
    try:
        x = vec.fit_transform(texts)
    except ValueError:  # no word left after the frequency limits
        x = None
    if x is None or x.shape[1] < max(N_DIMS // 2, n_topics):
        why = f"the {len(texts)} texts written before {before} share too few words to find topics"
        log.warning("no topic model: %s", why)
        return TopicModel(None, None, None, before, len(texts), why)
    svd = TruncatedSVD(min(N_DIMS, x.shape[1] - 1), random_state=seed).fit(x)
    e = normalize(svd.transform(x))
    km = _by_size(KMeans(n_topics, random_state=seed, n_init=50).fit(e[np.abs(e).sum(axis=1) > 0]))
    df = np.asarray((x > 0).sum(axis=0)).ravel()
    log.info(
        "topic model: %d texts, %d words, %d dimensions, %d topics",
        len(texts),
        x.shape[1],
        svd.n_components,
        n_topics,
    )
    return TopicModel(
        vec,
        svd,
        km,
        before,
        len(texts),
        doc_freq={t: int(df[i]) for t, i in vec.vocabulary_.items()},
    )


def _by_size(km: KMeans) -> KMeans:
    """Renumber the clusters by decreasing size (ties: by centre), so that topic 1 is the largest
    and
    refits on similar data number similar topics alike (k-means' own order is arbitrary)."""
    sizes = np.bincount(km.labels_, minlength=km.n_clusters)
    order = sorted(
        range(km.n_clusters), key=lambda k: (-sizes[k], tuple(np.round(km.cluster_centers_[k], 6)))
    )
    rank = np.empty(km.n_clusters, dtype=int)
    rank[order] = np.arange(km.n_clusters)
    km.cluster_centers_ = km.cluster_centers_[order]
    km.labels_ = rank[km.labels_]
    return km


def train(session: Session, before: dt.date, n_topics: int, seed: int, max_rows: int) -> TopicModel:
    """:func:`fit` on the :func:`training_sample` of texts written before ``before``."""
    return fit(training_sample(session, before, max_rows, seed), n_topics, seed, before)


def build(
    session: Session,
    before: dt.date,
    n_topics: int,
    seed: int,
    max_rows: int,
    staging_dir: Path | None = None,
    tables: Tables = SEARCH,
    vectors: bool = False,
) -> TopicModel:
    """Fit the model on texts before ``before``, then embed and assign every text in the warehouse.

    Writes ``tables``: weights, centroids, embeddings, topics and the topics' words (and, with
    ``vectors`` — Snowflake only — one ``VECTOR`` per text). Without a model (too few texts) the
    topics table still lists every text, with no topic.
    """
    model = train(session, before, n_topics, seed, max_rows)
    if model.available:
        embed_texts(session, model, tables, staging_dir)
        assign_topics(session, model, tables, staging_dir)
        if vectors:
            write_vectors(session, model, tables)
    else:
        texts = session.table(text.SOURCE_TABLE).filter(F.col("TEXT").is_not_null())
        wh.replace_table(
            texts.select(
                text_id().alias("TEXT_ID"),
                "CUSTOMER_ID",
                "TS",
                text.kind_column(session).alias("KIND"),
                "RATING",
                F.lit(None).cast("int").alias("TOPIC"),
            ),
            tables.topics,
        )
    return model


def embed_texts(
    session: Session, model: TopicModel, tables: Tables = SEARCH, staging_dir: Path | None = None
) -> str:
    """``TEXT_EMBEDDINGS``: ``TEXT_ID``, ``DIM``, ``VALUE`` (unit length per text), computed in the
    warehouse."""
    weights = session.table(wh.write_pandas(session, model.weights(), tables.weights, staging_dir))
    texts = (
        session.table(text.SOURCE_TABLE)
        .filter(F.col("TEXT").is_not_null())
        .select(text_id().alias("TEXT_ID"), "TEXT")
    )
    raw = (
        text.tokens(texts, ["TEXT_ID"])
        .join(weights, "TOKEN")
        .group_by("TEXT_ID", "DIM")
        .agg(F.sum(F.col("WEIGHT")).alias("RAW"))
    )
    norm = F.sqrt(F.sum(F.col("RAW") * F.col("RAW")).over(Window.partition_by(F.col("TEXT_ID"))))
    out = raw.select("TEXT_ID", "DIM", F.round(F.col("RAW") / norm, DECIMALS).alias("VALUE"))
    return wh.replace_table(out.filter(F.col("VALUE").is_not_null()), tables.embeddings)


def assign_topics(
    session: Session, model: TopicModel, tables: Tables = SEARCH, staging_dir: Path | None = None
) -> str:
    """``TEXT_TOPICS``: every text with its key, kind, rating and nearest topic (1..k; null = no
    known word).

    Nearest centre by Euclidean distance, as k-means assigns: the largest
    ``embedding . centre - |centre|^2 / 2``, ties to the lower topic.
    """
    cent = session.table(wh.write_pandas(session, model.centroids(), tables.centroids, staging_dir))
    bias = cent.group_by("TOPIC").agg(
        (F.lit(-0.5) * F.sum(F.col("VALUE") * F.col("VALUE"))).alias("BIAS")
    )
    emb = session.table(tables.embeddings)
    score = (
        emb.join(cent.with_column_renamed("VALUE", "C"), "DIM")
        .group_by("TEXT_ID", "TOPIC")
        .agg(F.sum(F.col("VALUE") * F.col("C")).alias("DOT"))
        .join(bias, "TOPIC")
        .select("TEXT_ID", "TOPIC", F.round(F.col("DOT") + F.col("BIAS"), DECIMALS).alias("SCORE"))
    )
    best = Window.partition_by(F.col("TEXT_ID")).order_by(
        F.col("SCORE").desc(), F.col("TOPIC").asc()
    )
    nearest = score.select("TEXT_ID", "TOPIC", F.row_number().over(best).alias("_R")).filter(
        F.col("_R") == 1
    )
    texts = (
        session.table(text.SOURCE_TABLE)
        .filter(F.col("TEXT").is_not_null())
        .select(
            text_id().alias("TEXT_ID"),
            "CUSTOMER_ID",
            "TS",
            text.kind_column(session).alias("KIND"),
            "RATING",
        )
    )
    out = texts.join(
        nearest.select("TEXT_ID", F.col("TOPIC").cast("int").alias("TOPIC")), "TEXT_ID", "left"
    )
    wh.write_pandas(session, words_frame(model), tables.words, staging_dir)
    return wh.replace_table(out.sort("TEXT_ID"), tables.topics)


def words_frame(model: TopicModel) -> pd.DataFrame:
    """``TOPIC``, ``LABEL``, ``WORDS``: each topic's label and typical words (for reports and the
    CLI)."""
    words, labels = model.top_words(), model.labels()
    return pd.DataFrame(
        {
            "TOPIC": list(words),
            "LABEL": [labels[k] for k in words],
            "WORDS": [", ".join(w) for w in words.values()],
        }
    )


def vector_sql(tables: Tables, n_dims: int) -> str:
    """Snowflake: one ``VECTOR(FLOAT, n)`` per text from the long ``TEXT_EMBEDDINGS`` table."""
    return (
        f"CREATE OR REPLACE TABLE {tables.vectors} AS SELECT TEXT_ID, "
        f"ARRAY_AGG(VALUE) WITHIN GROUP (ORDER BY DIM)::VECTOR(FLOAT, {int(n_dims)}) AS EMBEDDING "
        f"FROM {tables.embeddings} GROUP BY TEXT_ID"
    )


def write_vectors(session: Session, model: TopicModel, tables: Tables = SEARCH) -> str:
    """Snowflake only (its ``VECTOR`` type; the embedded warehouse has none): ``TEXT_VECTORS``."""
    session.sql(vector_sql(tables, model.n_dims)).collect()
    return tables.vectors


# --------------------------------------------------------------------------- search
def query_tokens(query: str) -> list[str]:
    """The words of a query, exactly as texts are tokenised (:data:`text.TOKEN_PATTERN`)."""
    return sorted(set(re.findall(text.TOKEN_PATTERN, query.lower())))


def query_vector(session: Session, query: str, tables: Tables = SEARCH) -> np.ndarray:
    """The query's unit-length embedding, from the weights in the warehouse (``N_DIMS`` values).

    Raises:
        ValueError: no word of the query is known to the model.
    """
    toks = query_tokens(query)
    rows = (
        (
            session.table(tables.weights)
            .filter(F.col("TOKEN").isin(toks))
            .group_by("DIM")
            .agg(F.sum(F.col("WEIGHT")).alias("Q"))
            .collect()
        )
        if toks
        else []
    )
    n = session.table(tables.weights).agg(F.max(F.col("DIM")).alias("N")).collect()[0]["N"]
    q = np.zeros(int(n or 0) + 1)
    for r in rows:
        q[int(r["DIM"])] = float(r["Q"])
    norm = float(np.linalg.norm(q))
    if norm == 0:
        raise ValueError(
            "None of the query's words occurs in enough texts to be known to the topic model; "
            "try other words."
        )
    return q / norm


def similarity_sql(tables: Tables, q: np.ndarray, n: int) -> str:
    """Snowflake: the ``n`` texts most similar to ``q`` with ``VECTOR_COSINE_SIMILARITY``."""
    literal = ", ".join(repr(float(v)) for v in q)
    return (
        f"SELECT TEXT_ID, ROUND(VECTOR_COSINE_SIMILARITY(EMBEDDING, [{literal}]::VECTOR(FLOAT, "
        f"{q.size})), "
        f"{DECIMALS}) AS SIMILARITY FROM {tables.vectors} ORDER BY SIMILARITY DESC, TEXT_ID LIMIT "
        f"{int(n)}"
    )


def similar(
    session: Session, query: str, n: int = 10, tables: Tables = SEARCH, vectors: bool = False
) -> pd.DataFrame:
    """The ``n`` texts most similar to ``query``, most similar first, computed in the warehouse.

    Args:
        vectors: use ``TEXT_VECTORS`` and ``VECTOR_COSINE_SIMILARITY`` (Snowflake); otherwise the
            dot product of the long embeddings (the same number: embeddings are unit vectors).

    Returns:
        ``similarity``, ``date``, ``kind``, ``rating``, ``topic``, ``text``: never who wrote it.
    """
    q = query_vector(session, query, tables)
    if vectors:
        top = session.sql(similarity_sql(tables, q, n))
    else:
        weight = F.lit(0.0)
        for d in range(q.size - 1, -1, -1):
            weight = F.iff(F.col("DIM") == F.lit(d), F.lit(float(q[d])), weight)
        sim = (
            session.table(tables.embeddings)
            .group_by("TEXT_ID")
            .agg(F.round(F.sum(F.col("VALUE") * weight), DECIMALS).alias("SIMILARITY"))
        )
        top = sim.sort(F.col("SIMILARITY").desc(), F.col("TEXT_ID")).limit(n)
    texts = session.table(text.SOURCE_TABLE).select(text_id().alias("TEXT_ID"), "TEXT")
    info = session.table(tables.topics).select("TEXT_ID", "TS", "KIND", "RATING", "TOPIC")
    df = (
        top.join(info, "TEXT_ID")
        .join(texts, "TEXT_ID")
        .sort(F.col("SIMILARITY").desc(), F.col("TEXT_ID"))
    )
    out = wh.to_pandas(
        df.select("SIMILARITY", "TS", "KIND", "RATING", "TOPIC", "TEXT"), "topics:similar"
    )
    out.columns = ["similarity", "date", "kind", "rating", "topic", "text"]
    out["date"] = pd.to_datetime(out["date"]).dt.date
    out.index = pd.RangeIndex(1, len(out) + 1, name="rank")
    return out


# --------------------------------------------------------------------------- topics in the EDA
def topic_table(session: Session, as_of: dt.date, tables: Tables = SEARCH) -> pd.DataFrame:
    """Per topic (aggregates only): label, words, texts, share, reviews, calls, mean rating and
    trend.

    ``trend (pp)`` is the topic's share of the texts written in the :data:`RECENT_DAYS` days before
    ``as_of`` minus its share in the same span before that, in percentage points.
    """
    end = dt.datetime.combine(as_of, dt.time())
    recent, before = end - dt.timedelta(days=RECENT_DAYS), end - dt.timedelta(days=2 * RECENT_DAYS)
    t = session.table(tables.topics).filter(
        F.col("TOPIC").is_not_null() & (F.col("TS") < pt.timestamp_literal(end))
    )
    one, zero = F.lit(1), F.lit(0)
    in_recent = F.col("TS") >= pt.timestamp_literal(recent)
    in_before = (F.col("TS") >= pt.timestamp_literal(before)) & ~in_recent
    agg = t.group_by("TOPIC").agg(
        F.count(one).alias("TEXTS"),
        F.sum(F.iff(F.col("KIND") == F.lit(text.DEFAULT_KIND), one, zero)).alias("REVIEWS"),
        F.count(F.col("RATING")).alias("RATED"),
        F.avg(F.col("RATING").cast("double")).alias("MEAN_RATING"),
        F.sum(F.iff(in_recent, one, zero)).alias("RECENT"),
        F.sum(F.iff(in_before, one, zero)).alias("BEFORE"),
    )
    out = wh.to_pandas(
        agg.join(session.table(tables.words), "TOPIC", "left").sort("TOPIC"), "topics:table"
    )
    out.columns = [c.lower() for c in out.columns]
    out = out.set_index("topic")
    total = out["texts"].sum()
    shares = {
        k: out[k] / out[k].sum() if out[k].sum() else np.nan * out[k] for k in ("recent", "before")
    }
    return pd.DataFrame(
        {
            "label": out["label"],
            "typical words": out["words"],
            "texts": out["texts"],
            "share": out["texts"] / total if total else np.nan,
            "reviews": out["reviews"],
            "calls": out["texts"] - out["reviews"],
            "mean rating": out["mean_rating"].astype(float),
            "trend (pp)": 100 * (shares["recent"] - shares["before"]),
        }
    )


def monthly_shares(session: Session, as_of: dt.date, tables: Tables = SEARCH) -> pd.DataFrame:
    """Share of each topic among the texts of each calendar month before ``as_of`` (rows:
    months)."""
    end = dt.datetime.combine(as_of, dt.time())
    t = session.table(tables.topics).filter(
        F.col("TOPIC").is_not_null() & (F.col("TS") < pt.timestamp_literal(end))
    )
    df = t.group_by(F.date_trunc("month", F.col("TS")).alias("MONTH"), "TOPIC").agg(
        F.count(F.lit(1)).alias("N")
    )
    out = (
        wh.to_pandas(df, "topics:monthly")
        .pivot(index="MONTH", columns="TOPIC", values="N")
        .fillna(0)
    )
    out.index = pd.to_datetime(out.index)
    return out.div(out.sum(axis=1), axis=0).sort_index()


# --------------------------------------------------------------------------- features
def share_columns(n_topics: int) -> list[str]:
    """``TOPIC_SHARE_01`` … : the per-customer topic share features."""
    return [f"{SHARE_PREFIX}{k:02d}" for k in range(1, n_topics + 1)]


def customer_shares(
    session: Session, cuts: DataFrame, n_topics: int, tables: Tables = FEATURE
) -> DataFrame:
    """Per customer and cut-off: the share of their texts written before the cut-off in each topic.

    ``cuts`` is the feature stage's table of cut-offs (``CUTOFF``, ``T0`` = the cut-off as a
    timestamp). Texts with no topic count in the denominator (they are texts all the same).
    """
    t = session.table(tables.topics).select("CUSTOMER_ID", "TS", "TOPIC")
    rows = t.join(cuts.select("CUTOFF", "T0"), F.col("TS") < F.col("T0"))
    n = F.count(F.lit(1))
    return rows.group_by("CUSTOMER_ID", "CUTOFF").agg(
        *[
            (F.sum(F.iff(F.col("TOPIC") == F.lit(k), F.lit(1.0), F.lit(0.0))) / n).alias(c)
            for k, c in enumerate(share_columns(n_topics), 1)
        ]
    )
