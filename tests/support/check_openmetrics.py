#!/usr/bin/env python3
"""Strictly parse an OpenMetrics exposition from stdin; exit 1 with the reason if invalid."""
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

text = sys.stdin.read()
try:
    families = list(text_string_to_metric_families(text))
except Exception as e:  # the parser raises ValueError with the offending line
    print(f"invalid OpenMetrics: {e}", file=sys.stderr)
    sys.exit(1)
print(f"{len(families)} families, {sum(len(f.samples) for f in families)} samples")
