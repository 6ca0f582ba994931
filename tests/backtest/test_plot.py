"""The equity and drawdown plot: the PNG opened with PIL, the HTML page parsed and opened in headless chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import replace
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import numpy
import pytest
from PIL import Image, ImageStat

from backtest.plot import (
    DRAWDOWN_COLOUR,
    EQUITY_COLOUR,
    PlotError,
    axes_pixel_boxes,
    drawdown_percent,
    equity_figure,
    html_page,
    write_html,
    write_png,
)
from backtest.report import BacktestReport
from backtest.result import BacktestResult, EquityPoint, FillRecord, FundingRecord

D = Decimal
H = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
BTC = "BTC/USD:USD"
EQUITY = ("1000", "1004", "1012", "995", "1001", "1020", "1008", "1030", "1026", "1041")
CHROMIUM = shutil.which("chromium")
NEEDS_CHROMIUM = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


def result(equity: tuple[str, ...] = EQUITY, **changes: object) -> BacktestResult:
    """A small one-symbol result with two round trips and an equity curve one hour a point."""
    base = BacktestResult(
        symbols=(BTC,), timeframe="1h", start_ms=T0, end_ms=T0 + len(equity) * H, strategy="sma_cross",
        params={"fast": 3}, seed=1, initial_balance=D(1000), final_balance=D("1041.23"),
        fills=(FillRecord(T0 + H, BTC, "buy", D(1), D(100), D("0.05"), "entry"),
               FillRecord(T0 + 3 * H, BTC, "sell", D(1), D("117.31"), D("0.06"), "exit"),
               FillRecord(T0 + 5 * H, BTC, "sell", D(2), D(120), D("0.12"), "entry"),
               FillRecord(T0 + 8 * H, BTC, "buy", D(2), D(108), D("0.11"), "exit")),
        funding=(FundingRecord(T0 + 6 * H, BTC, D("-0.04")),),
        equity=tuple(EquityPoint(T0 + i * H, D(e), D(100) if i % 2 else D(0)) for i, e in enumerate(equity)),
        rejections={"RISK_LIMIT": 1}, candle_steps=len(equity), complete=True)
    return replace(base, **changes)  # type: ignore[arg-type]


def rgb(colour: str) -> tuple[int, int, int]:
    """`#rrggbb` as an RGB triple."""
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def pixels_near(image: Image.Image, colour: str, tolerance: int = 12) -> int:
    """How many pixels of the image are within `tolerance` of the colour in every channel."""
    red, green, blue = rgb(colour)
    data = image.convert("RGB").tobytes()
    return sum(1 for r, g, b in zip(data[0::3], data[1::3], data[2::3], strict=True)
               if abs(r - red) <= tolerance and abs(g - green) <= tolerance and abs(b - blue) <= tolerance)


def test_the_png_has_the_set_size_and_both_axes_hold_their_curves(tmp_path: Path) -> None:
    path = write_png(result(), tmp_path / "equity.png")
    assert path == tmp_path / "equity.png"
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (1200, 700)
        equity_box, drawdown_box = axes_pixel_boxes(equity_figure(result()))
        for box in (equity_box, drawdown_box):
            left, top, right, bottom = box
            assert 0 <= left < right <= 1200 and 0 <= top < bottom <= 700
            inside = image.crop((left + 3, top + 3, right - 3, bottom - 3))  # inside the frame
            assert max(ImageStat.Stat(inside.convert("L")).var) > 10, f"axes {box} are blank"
        assert equity_box[3] <= drawdown_box[1], "equity is above drawdown"
        assert pixels_near(image.crop(equity_box), EQUITY_COLOUR) > 500  # the equity line
        assert pixels_near(image.crop(drawdown_box), DRAWDOWN_COLOUR) > 200  # the drawdown line
        assert pixels_near(image.crop(equity_box), DRAWDOWN_COLOUR) == 0
        assert "Software" not in image.info  # no matplotlib version in the file


def test_the_figure_plots_the_equity_and_the_drawdown_below_the_peak() -> None:
    figure = equity_figure(result(equity=("100", "120", "90", "130")))
    equity_axes, drawdown_axes = figure.axes
    assert numpy.asarray(equity_axes.lines[0].get_ydata()).tolist() == [100.0, 120.0, 90.0, 130.0]
    assert numpy.asarray(drawdown_axes.lines[0].get_ydata()).tolist() == pytest.approx([0.0, 0.0, -25.0, 0.0])
    assert drawdown_axes.collections, "the drawdown is filled"
    assert equity_axes.get_shared_x_axes().joined(equity_axes, drawdown_axes)
    assert "sma_cross on BTC/USD:USD, 1h: 2024-01-01 00:00 to 2024-01-01 04:00 UTC" == equity_axes.get_title()
    assert (equity_axes.get_ylabel(), drawdown_axes.get_xlabel()) == ("equity (USD)", "time (UTC)")
    assert tuple(figure.get_size_inches()) == (12.0, 7.0) and figure.dpi == 100


def test_drawdown_percent_is_below_the_running_peak() -> None:
    assert drawdown_percent([D(100), D(80), D(120), D(90)]) == [D(0), D(-20), D(0), D(-25)]
    assert drawdown_percent([]) == []


def test_the_same_result_gives_the_same_png_bytes(tmp_path: Path) -> None:
    first = write_png(result(), tmp_path / "a.png").read_bytes()
    second = write_png(BacktestReport.from_result(result()), tmp_path / "b.png").read_bytes()
    assert first == second


@pytest.mark.parametrize("equity", [(), ("1000",), ("1000", "1000")])
def test_a_tiny_or_empty_curve_still_gives_a_png(tmp_path: Path, equity: tuple[str, ...]) -> None:
    path = write_png(result(equity=equity, fills=(), funding=()), tmp_path / "tiny.png")
    with Image.open(path) as image:
        assert image.size == (1200, 700)


def test_an_unwritable_path_raises_a_plot_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(PlotError, match=re.escape(str(blocker / "x.png"))):
        write_png(result(), blocker / "x.png")


def test_importing_backtest_plot_does_not_import_matplotlib() -> None:
    code = "import sys, backtest.plot, backtest.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=50, check=True)
    assert out.stdout.strip() == "False"


class _TagChecker(HTMLParser):
    """Counts what a page holds and records every end tag that closes no open element."""

    VOID = {"meta", "br", "img", "hr", "link", "input", "area", "base", "col", "embed", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problems: list[str] = []
        self.tags: dict[str, int] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1] if self.open else 'nothing'}")
        else:
            self.open.pop()


def test_the_html_page_is_self_contained_html5_with_summary_chart_and_trades(tmp_path: Path) -> None:
    path = write_html(result(), tmp_path / "report.html")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    assert '<meta charset="utf-8">' in page
    assert re.search(r"<title>Backtest: sma_cross on BTC/USD:USD \(2024-01-01 00:00 to 2024-01-01 10:00 UTC\)</title>",
                     page)
    checker = _TagChecker()
    checker.feed(page)
    checker.close()
    assert checker.problems == [] and checker.open == []
    assert checker.tags["title"] == 1 and checker.tags["svg"] == 1 and checker.tags["path"] > 10
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page
    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page), "the page loads nothing from the network"
    assert "<td>40.93 USD (gross 41.31, fees -0.34, funding -0.04)</td>" in page  # the summary's net PnL
    assert "<td>RISK_LIMIT 1</td>" in page
    assert '<td class="number">17.20</td>' in page and '<td class="number">23.73</td>' in page  # trades' net


def test_the_same_result_gives_the_same_html_bytes() -> None:
    assert html_page(result()) == html_page(BacktestReport.from_result(result()))


def test_an_interrupted_run_says_so_on_the_page() -> None:
    assert "Interrupted: partial report." in html_page(result(complete=False))


def _chromium(*arguments: str, profile: Path) -> subprocess.CompletedProcess[str]:
    """One headless chromium run (its own profile folder, so parallel runs do not share one)."""
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                           *arguments], capture_output=True, text=True, timeout=100, check=True)


@NEEDS_CHROMIUM
@pytest.mark.timeout(120)
def test_chromium_renders_the_svg_paths_and_the_summary_numbers(tmp_path: Path) -> None:
    path = write_html(result(), tmp_path / "report.html")
    dom = _chromium("--dump-dom", path.as_uri(), profile=tmp_path / "profile").stdout
    assert re.search(r"<svg[^>]*>", dom)
    assert len(re.findall(r"<path\b", dom)) > 10
    assert "40.93 USD" in dom and "RISK_LIMIT 1" in dom
    assert "<title>Backtest: sma_cross on BTC/USD:USD" in dom


@NEEDS_CHROMIUM
@pytest.mark.timeout(120)
def test_chromium_screenshot_of_the_page_is_not_blank(tmp_path: Path) -> None:
    path = write_html(result(), tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    _chromium(f"--screenshot={shot}", "--window-size=1280,1800", path.as_uri(), profile=tmp_path / "profile")
    with Image.open(shot) as image:
        assert image.size == (1280, 1800)
        assert max(ImageStat.Stat(image.convert("L")).var) > 100
        assert pixels_near(image, EQUITY_COLOUR) > 300  # the chart's equity line is on screen
