"""Small test helpers: recording actors; waiting on a condition and the fake ports come from the testkit."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pykka

from testkit.ports import FakePorts
from testkit.waiting import wait_until

__all__ = ["FakePorts", "Inbox", "Recorder", "start_recorder", "wait_until"]  # the first and last from the testkit


class Inbox:
    """What a Recorder actor received; read and waited on from the test's thread."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self._changed = threading.Condition()

    def add(self, message: Any) -> None:
        """Record one message."""
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    def received(self, kind: type | tuple[type, ...]) -> list[Any]:
        """The messages of a type received so far."""
        with self._changed:
            return [m for m in self.messages if isinstance(m, kind)]

    def wait_for(self, kind: type, count: int = 1, timeout: float = 5.0) -> list[Any]:
        """Wait until `count` messages of a type arrived; return them."""
        with self._changed:
            self._changed.wait_for(lambda: len([m for m in self.messages if isinstance(m, kind)]) >= count, timeout)
        found = self.received(kind)
        assert len(found) >= count, f"expected {count} {kind.__name__}, got {len(found)}"
        return found


class Recorder(pykka.ThreadingActor):
    """An actor that records every message in an Inbox; asks are answered by `reply(message)`."""

    def __init__(self, inbox: Inbox, reply: Callable[[Any], Any] | None = None) -> None:
        super().__init__()
        self.inbox = inbox
        self.reply = reply or (lambda message: None)

    def on_receive(self, message: Any) -> Any:
        self.inbox.add(message)
        return self.reply(message)


def start_recorder(reply: Callable[[Any], Any] | None = None) -> tuple[pykka.ActorRef[Any], Inbox]:
    """Start a Recorder; return its reference and its inbox."""
    inbox = Inbox()
    return Recorder.start(inbox, reply), inbox
