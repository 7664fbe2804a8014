"""A loopback TCP proxy that damages the link on purpose, for hil/test_faults.py.

    with FaultProxy(lambda: board.connect()._ser.sock, seed=1) as proxy:   # upstream socket
        dev = Device.open(proxy.url)
        proxy.set(drop=0.05, corrupt=0.05, dup=0.05, delay=0.05)           # per frame
        ...
        proxy.set()                                                         # clean again

Bytes are cut into frames at each 0x00 (the link's delimiter) and each frame, in either
direction, may be dropped (a random run of its bytes, or all of it, delimiter included),
corrupted (one byte changed), duplicated (sent twice) or delayed (sent after a pause, which
holds back the frames behind it: TCP keeps the order). The random choices come from one
seeded generator per direction. Only 127.0.0.1 is used.
"""
from __future__ import annotations

import logging
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger(__name__)


@dataclass
class Faults:
    """Probabilities per frame (0..1) and the longest delay, in seconds."""

    drop: float = 0.0
    corrupt: float = 0.0
    dup: float = 0.0
    delay: float = 0.0
    max_delay_s: float = 0.2


@dataclass
class FaultCounts:
    """What the proxy did, per direction ("up": host to device, "down": device to host)."""

    frames: dict[str, int] = field(default_factory=lambda: {"up": 0, "down": 0})
    dropped: dict[str, int] = field(default_factory=lambda: {"up": 0, "down": 0})
    corrupted: dict[str, int] = field(default_factory=lambda: {"up": 0, "down": 0})
    duplicated: dict[str, int] = field(default_factory=lambda: {"up": 0, "down": 0})
    delayed: dict[str, int] = field(default_factory=lambda: {"up": 0, "down": 0})

    def total(self) -> int:
        """Faults applied, all kinds, both directions."""
        return sum(sum(d.values()) for d in (self.dropped, self.corrupted, self.duplicated,
                                             self.delayed))


class FaultProxy:
    """Serve one client at a time on 127.0.0.1:PORT, forwarding to ``upstream()``.

    Args:
        upstream: returns a connected socket to the device (called once per client).
        seed: seeds the fault choices.
    """

    def __init__(self, upstream: Callable[[], socket.socket], seed: int = 0) -> None:
        self._upstream = upstream
        self._seed = seed
        self.faults = Faults()
        self.counts = FaultCounts()
        self._lock = threading.Lock()
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(1)
        self._srv.settimeout(0.1)
        self.port = int(self._srv.getsockname()[1])
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._acceptor = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        """``socket://127.0.0.1:PORT`` of the proxy."""
        return f"socket://127.0.0.1:{self.port}"

    def set(self, **faults: float) -> None:
        """Apply these fault rates from now on (no argument: a clean link)."""
        with self._lock:
            self.faults = Faults(**faults)

    def __enter__(self) -> "FaultProxy":
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop forwarding and close every socket (bounded: threads are daemons)."""
        self._stop.set()
        for s in self._socks + [self._srv]:
            try:
                s.close()
            except OSError:
                pass
        for t in [self._acceptor] + self._threads:
            if t.is_alive() and t is not threading.current_thread():
                t.join(2.0)

    # -- forwarding ----------------------------------------------------------------------------
    def _accept(self) -> None:
        n = 0
        while not self._stop.is_set():
            try:
                client, _ = self._srv.accept()
            except (socket.timeout, OSError):
                continue
            up = self._upstream()
            n += 1
            for s in (client, up):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._socks.append(s)
            for src, dst, way in ((client, up, "up"), (up, client, "down")):
                rng = random.Random(self._seed * 1000 + n * 2 + (way == "down"))
                t = threading.Thread(target=self._pump, args=(src, dst, way, rng),
                                     name=f"fault-proxy-{way}", daemon=True)
                self._threads.append(t)
                t.start()

    def _pump(self, src: socket.socket, dst: socket.socket, way: str,
              rng: random.Random) -> None:
        buf = bytearray()
        src.settimeout(0.1)
        try:
            while not self._stop.is_set():
                try:
                    data = src.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                buf += data
                while True:
                    end = buf.find(b"\x00")
                    if end < 0:
                        break
                    frame = bytes(buf[:end + 1])
                    del buf[:end + 1]
                    self._forward(frame, dst, way, rng)
        except OSError:
            pass
        finally:
            # one side went: close the other, as a cable pulled at either end would
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _forward(self, frame: bytes, dst: socket.socket, way: str, rng: random.Random) -> None:
        with self._lock:
            f = self.faults
        c = self.counts
        c.frames[way] += 1
        out = [frame]
        if len(frame) > 1:  # empty frames (a lone 0x00) pass untouched
            if rng.random() < f.drop:
                c.dropped[way] += 1
                a = rng.randrange(len(frame))
                b = rng.randrange(a + 1, len(frame) + 1) if rng.random() < 0.5 else len(frame)
                out = [frame[:a] + frame[b:]]  # a run of bytes, the delimiter maybe with it
            if rng.random() < f.corrupt:
                c.corrupted[way] += 1
                k = rng.randrange(len(out[0])) if out[0] else 0
                if out[0]:
                    damaged = bytearray(out[0])
                    damaged[k] ^= rng.randrange(1, 256)
                    out = [bytes(damaged)]
            if rng.random() < f.dup:
                c.duplicated[way] += 1
                out = out * 2
            if rng.random() < f.delay:
                c.delayed[way] += 1
                time.sleep(rng.uniform(0.0, f.max_delay_s))
        for piece in out:
            if piece:
                dst.sendall(piece)
