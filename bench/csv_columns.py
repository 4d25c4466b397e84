"""Print chosen columns of a CSV on stdin (`harness results --format csv`) as an aligned text
table, rows sorted by the given keys: the bench/results files quote a few columns of a wide table.

    python -m harness results --format csv ... | python bench/csv_columns.py label,recall_at_1 [--sort label]
"""
from __future__ import annotations

import argparse
import csv
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("columns", help="comma-separated column names")
    parser.add_argument("--sort", default="", help="comma-separated columns to sort by")
    return parser


def main() -> int:
    args = build_parser().parse_args()
    reader = csv.DictReader(line for line in sys.stdin if line.strip() and not line.startswith("#"))
    columns = [c for c in args.columns.split(",") if c]
    missing = [c for c in columns if c not in (reader.fieldnames or [])]
    if missing:
        print(f"error: no column {', '.join(missing)} in the CSV on stdin", file=sys.stderr)
        return 2
    rows = list(reader)
    keys = [c for c in args.sort.split(",") if c]
    rows.sort(key=lambda r: [r.get(k, "") for k in keys])

    def cell(value: str) -> str:
        try:
            number = float(value)
        except ValueError:
            return value or "-"
        return f"{number:.4f}" if "." in value or "e" in value else value

    table = [columns] + [[cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for n, line in enumerate(table):
        print("  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * width for width in widths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
