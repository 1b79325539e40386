"""Figures, the tables they are printed in, and the JSON file they are saved to."""

from __future__ import annotations

import json
import statistics
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.peers import BenchError


@dataclass
class Figure:
    """One measurement: a value, or a note saying why there is none (or what else happened)."""

    value: float | None = None
    note: str = ""
    #: The lowest and highest of the rounds it is the median of ("" for one run).
    spread: str = ""

    def text(self, digits: int) -> str:
        """The figure as a table cell."""
        if self.value is None:
            return self.note or "-"
        number = f"{self.value:,.{digits}f}"
        if self.spread:
            number += f" [{self.spread}]"
        return f"{number} ({self.note})" if self.note else number


def median(figures: list[Figure]) -> Figure:
    """The median of the rounds of one measurement, saying the spread; a round without a figure wins.

    A machine shared with other work (a VM's neighbours, wake-up latency between cores) moves a
    single run by tens of percent; the median of rounds taken in turn with the reference's is
    the figure a ratio can stand on.
    """
    for figure in figures:
        if figure.value is None:
            return figure
    if len(figures) == 1:
        return figures[0]
    values = [figure.value for figure in figures if figure.value is not None]
    notes = sorted({figure.note for figure in figures if figure.note})
    digits = 0 if max(values) >= 100 else 1
    spread = f"{min(values):,.{digits}f}-{max(values):,.{digits}f}"
    return Figure(statistics.median(values), "; ".join(notes), spread)


@dataclass
class Row:
    """One line of a table: the reference's figure beside ours."""

    test: str
    unit: str
    reference: Figure
    ours: Figure

    @property
    def ratio(self) -> float | None:
        """Ours divided by the reference's (higher is better for trio_hface)."""
        if self.reference.value and self.ours.value is not None:
            return self.ours.value / self.reference.value
        return None


@dataclass
class Section:
    """A table: its title, what the reference column is, its rows, and what went wrong."""

    title: str
    reference: str
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, test: str, unit: str, reference: Figure, ours: Figure) -> None:
        """Add a row and print it at once (a long run shows its progress)."""
        row = Row(test, unit, reference, ours)
        self.rows.append(row)
        print(format_row(row), flush=True)

    def part(self, name: str, measure: Callable[[], None]) -> None:
        """Run one part; a part that cannot run is recorded as a failure and the rest goes on."""
        try:
            measure()
        except (BenchError, OSError, TimeoutError, AssertionError) as exc:
            self.fail(f"{name}: {exc}")
        except Exception as exc:  # report anything else too, with where it came from
            self.fail(f"{name}: {exc!r} at {traceback.format_tb(exc.__traceback__)[-1].strip()}")

    def fail(self, message: str) -> None:
        """Record that a part failed."""
        self.failures.append(message)
        print(f"FAILED {message}", flush=True)

    def header(self) -> None:
        """Print the title and the head of the table."""
        print(f"\n## {self.title}\n", flush=True)
        print(f"| test | {self.reference} | trio_hface | ratio |\n|---|---|---|---|", flush=True)


def format_row(row: Row) -> str:
    """A table line: MB/s with one decimal, rates without."""
    digits = 1 if "MB/s" in row.unit else 0
    ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
    return f"| {row.test}, {row.unit} | {row.reference.text(digits)} | {row.ours.text(digits)} | {ratio} |"


def save_json(path: Path, meta: dict[str, Any], sections: list[Section]) -> None:
    """Write every figure (and every failure) to *path*."""
    data = {
        "meta": meta,
        "sections": [
            {
                "title": section.title,
                "reference": section.reference,
                "rows": [{**asdict(row), "ratio": row.ratio} for row in section.rows],
                "failures": section.failures,
            }
            for section in sections
        ],
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
