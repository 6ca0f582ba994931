"""Backtests: the trading system's own actors on a replay of real candles, with a report."""
