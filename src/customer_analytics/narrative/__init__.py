"""Report wording: every sentence, table label and number format the reports show.

Domain modules (ingest, eda, features, models, registry, predict, forecast, drift) return numbers
and records; the modules here turn them into words for people: plain sentences with units and the
run's currency, model and feature names as words, a glossary for the few technical terms left.

* :mod:`.fmt` — numbers, money, units, percentages, dates; formatted tables;
* :mod:`.words` — identifiers as words (models, features, tables, metrics) and the glossary;
* :mod:`.runs` — the run index and the run banner;
* one module per report: :mod:`.ingest` (01), :mod:`.eda` (02), :mod:`.features` (03),
  :mod:`.models` (04), :mod:`.forecast` (05).

The report modules are imported on use (they import the domain modules); :mod:`.fmt`,
:mod:`.words` and :mod:`.runs` are light.
"""

from customer_analytics.narrative import fmt, runs, words

__all__ = ["fmt", "runs", "words"]
