"""customer-analytics: predict what each customer of an online shop buys next.

The notebooks in ``notebooks/`` import this package; the logic lives here.
"""

import os

# Third-party telemetry is off by default (README: "Telemetry"). Users may override.
os.environ.setdefault("PLOOMBER_STATS_ENABLED", "false")
os.environ.setdefault("PLOOMBER_VERSION_CHECK_DISABLED", "1")
os.environ.setdefault("SNOWFLAKE_DISABLE_TELEMETRY", "true")

__version__ = "0.1.0"
