"""The building blocks of a walkthrough page: a `Section` and the inline SVG figure in it.

Each plot sits in a `<section class="plot">` beside the paragraph that reads it, and
carries `data-plot` (its name) and `data-points` (how many data points it draws), so a
test can check that no plot is empty.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["Section", "inline_svg", "sign_colour"]


@dataclass(frozen=True)
class Section:
    """One block of the page: a heading, its explanation, and a plot (or none)."""

    key: str
    title: str
    paragraphs: list[str]  # trusted HTML built here from escaped values
    svg: str | None = None
    points: int = 0

    def render(self) -> str:
        """The section as HTML: text beside its figure, or text alone across the page."""
        text = f"<h2>{html.escape(self.title)}</h2>" + "".join(
            f"<p>{p}</p>" for p in self.paragraphs
        )
        if self.svg is None:
            return f'<section class="wide" id="{self.key}"><div class="text">{text}</div></section>'
        return (
            f'<section class="plot" id="{self.key}" data-plot="{self.key}" '
            f'data-points="{self.points}"><div class="text">{text}</div>'
            f"<figure>{self.svg}</figure></section>"
        )


def inline_svg(
    key: str, draw: Callable[[Axes], None], size: tuple[float, float] = (5.6, 4.2)
) -> str:
    """Draw on a fresh figure (no pyplot state) and return it as inline SVG markup."""
    import matplotlib
    from matplotlib.figure import Figure

    # Text stays text (no font glyphs embedded); the salt keeps ids unique per page.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": key}):
        figure = Figure(figsize=size, layout="constrained")
        draw(figure.add_subplot())
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg")
    markup = buffer.getvalue()
    return markup[markup.index("<svg") :]


def sign_colour(value: float) -> str:
    """Red raises the risk, blue lowers it."""
    return "#c0392b" if value > 0 else "#2874a6"
