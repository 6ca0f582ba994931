"""The backtest's equity curve and drawdown as a PNG and as one self-contained HTML page (matplotlib, Agg, no GUI).

matplotlib is imported inside the functions, so importing `backtest` stays cheap. No pyplot: a `Figure` drawn on its
own Agg canvas touches no global backend and opens no window. The PNG carries no matplotlib version and the SVG no
date, and SVG ids come from a fixed salt, so the same result gives the same bytes (on the same matplotlib and fonts).
"""

from __future__ import annotations

import html
import io
import re
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from backtest.report import BacktestReport, plain, utc_datetime, utc_text
from backtest.result import BacktestResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURE_INCHES = (12.0, 7.0)
DPI = 100  # 1200 x 700 pixels
EQUITY_COLOUR = "#1f77b4"
DRAWDOWN_COLOUR = "#d62728"
SVG_HASH_SALT = "kraken-actors-backtest"  # fixed: matplotlib salts SVG ids with a random uuid otherwise
MAX_TITLE_SYMBOLS = 4


class PlotError(Exception):
    """A plot could not be written (the path is not writable, ...); the message names the file."""


def _report(report_or_result: BacktestReport | BacktestResult) -> BacktestReport:
    """The report of a result, or the report itself."""
    if isinstance(report_or_result, BacktestReport):
        return report_or_result
    return BacktestReport.from_result(report_or_result)


def drawdown_percent(equity: list[Decimal]) -> list[Decimal]:
    """Per point, how far equity is below its running peak, in percent of that peak (<= 0; 0 at a non-positive peak)."""
    drawdowns = []
    peak: Decimal | None = None
    for value in equity:
        peak = value if peak is None or value > peak else peak
        drawdowns.append((value - peak) / peak * 100 if peak > 0 else Decimal(0))
    return drawdowns


def chart_title(report: BacktestReport) -> str:
    """The figure's title: strategy, symbols (the first few) and period."""
    r = report.result
    symbols = ", ".join(r.symbols[:MAX_TITLE_SYMBOLS])
    if len(r.symbols) > MAX_TITLE_SYMBOLS:
        symbols += f" +{len(r.symbols) - MAX_TITLE_SYMBOLS} more"
    partial = " (interrupted: partial)" if not r.complete else ""
    return f"{r.strategy} on {symbols}, {r.timeframe}: {utc_text(r.start_ms)} to {utc_text(r.end_ms)} UTC{partial}"


def equity_figure(report_or_result: BacktestReport | BacktestResult) -> Figure:
    """The figure: equity (top) and drawdown below the running peak in percent (bottom, filled), sharing UTC time."""
    from matplotlib import dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    report = _report(report_or_result)
    points = report.result.equity
    times = [utc_datetime(p.time_ms) for p in points]
    equity = [p.equity for p in points]
    drawdown = [float(d) for d in drawdown_percent(equity)]
    figure = Figure(figsize=FIGURE_INCHES, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    equity_axes, drawdown_axes = figure.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    marker = "o" if len(points) == 1 else None
    equity_axes.plot(times, [float(e) for e in equity], color=EQUITY_COLOUR, linewidth=1.5, marker=marker,
                     label="equity")
    drawdown_axes.fill_between(times, drawdown, 0.0, color=DRAWDOWN_COLOUR, alpha=0.35, linewidth=0)
    drawdown_axes.plot(times, drawdown, color=DRAWDOWN_COLOUR, linewidth=1.0, marker=marker, label="drawdown")
    equity_axes.set_title(chart_title(report))
    equity_axes.set_ylabel("equity (USD)")
    equity_axes.ticklabel_format(axis="y", useOffset=False, style="plain")  # dollars as dollars, no 1e6 offset
    drawdown_axes.set_ylabel("drawdown (% below peak)")
    drawdown_axes.set_xlabel("time (UTC)")
    for axes in (equity_axes, drawdown_axes):
        axes.grid(True, alpha=0.3)
    if not points:
        equity_axes.text(0.5, 0.5, "no equity points", transform=equity_axes.transAxes, ha="center", va="center")
    else:
        locator = mdates.AutoDateLocator(tz=mdates.UTC)
        drawdown_axes.xaxis.set_major_locator(locator)
        drawdown_axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=mdates.UTC))
    if drawdown and min(drawdown) == 0:
        drawdown_axes.set_ylim(-1, 0.05)  # a curve that never fell: a visible zero line, not a squashed axis
    return figure


def axes_pixel_boxes(figure: Figure) -> list[tuple[int, int, int, int]]:
    """Each axes' plotting area in image pixels as (left, top, right, bottom), top-left origin (as PIL crops)."""
    figure.canvas.draw()
    height = figure.bbox.height
    boxes = []
    for axes in figure.axes:
        box = axes.get_window_extent()
        boxes.append((round(box.x0), round(height - box.y1), round(box.x1), round(height - box.y0)))
    return boxes


def _write(path: Path, data: bytes) -> Path:
    """Write the bytes, or PlotError naming the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as error:
        raise PlotError(f"cannot write {path}: {error.strerror or error}; choose a writable path") from None
    return path


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG at its own size, without the Software (matplotlib version) chunk."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def svg_text(figure: Figure) -> str:
    """The figure as an SVG element for inline HTML: no XML declaration or doctype, no date, fixed ids."""
    import matplotlib

    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": SVG_HASH_SALT, "svg.fonttype": "path"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue().decode("utf-8")
    text = re.sub(r"\A\s*<\?xml[^>]*\?>\s*(<!DOCTYPE[^>]*>\s*)?", "", text)
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.DOTALL)  # RDF namespaces, no data


def write_png(report_or_result: BacktestReport | BacktestResult, path: Path | str) -> Path:
    """Write the equity and drawdown chart as a 1200 x 700 PNG; the same result gives the same bytes."""
    figure = equity_figure(report_or_result)
    return _write(Path(path), png_bytes(figure))


_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { padding: 0.25em 0.75em; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.partial { color: #b00; font-weight: bold; }
.chart svg { max-width: 100%; height: auto; }
"""


def html_page(report_or_result: BacktestReport | BacktestResult) -> str:
    """One self-contained HTML5 page: the summary table, the chart as inline SVG and the trade table."""
    report = _report(report_or_result)
    r = report.result
    title = f"Backtest: {r.strategy} on {', '.join(r.symbols)} ({utc_text(r.start_ms)} to {utc_text(r.end_ms)} UTC)"
    e = html.escape
    summary = "\n".join(f"<tr><th>{e(label)}</th><td>{e(value)}</td></tr>" for label, value in report.summary_rows())
    header = "".join(f"<th>{e(h)}</th>" for h in ("entry time (UTC)", "symbol", "side", "amount", "entry", "exit",
                                                   "net USD"))
    trade_lines = []
    for row in report.trade_rows():
        cells = "".join(f'<td class="number">{e(c)}</td>' if i >= 3 else f"<td>{e(c)}</td>" for i, c in enumerate(row))
        trade_lines.append(f"<tr>{cells}</tr>")
    trades = (f"<table id=\"trades\">\n<thead><tr>{header}</tr></thead>\n<tbody>\n" + "\n".join(trade_lines)
              + "\n</tbody>\n</table>") if trade_lines else "<p id=\"trades\">No round trips.</p>"
    partial = '<p class="partial">Interrupted: partial report.</p>\n' if not r.complete else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{e(title)}</h1>\n{partial}"
        f'<h2>Summary</h2>\n<table id="summary">\n<tbody>\n{summary}\n</tbody>\n</table>\n'
        f'<h2>Equity and drawdown</h2>\n<div class="chart">\n{svg_text(equity_figure(report))}</div>\n'
        f"<h2>Trades ({len(report.trades)})</h2>\n{trades}\n"
        f"<p>Net PnL {e(plain(report.net_pnl))} USD exactly; see the JSON report for every exact value.</p>\n"
        "</body>\n</html>\n"
    )


def write_html(report_or_result: BacktestReport | BacktestResult, path: Path | str) -> Path:
    """Write the self-contained HTML page (no network, no scripts); the same result gives the same bytes."""
    return _write(Path(path), html_page(report_or_result).encode("utf-8"))
