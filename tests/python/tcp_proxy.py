"""A loopback TCP proxy that a test can cut and heal: the network partition of the
cluster tests (test_cluster.py).

`TcpProxy(target)` listens on a free 127.0.0.1 port and forwards every connection to
`target`, byte for byte, both ways. `cut()` drops every live connection and from then on
blackholes new ones: they are accepted (the dialer sees a connected socket) but nothing
is read from them or forwarded, as across a partitioned network. `heal()` closes the
blackholed connections, so their dialers notice and reconnect, and forwards again.

One thread accepts; each forwarded connection has two pump threads. Everything stops in
`close()`.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Optional

#: How long the accept loop blocks before it looks at its stop flag.
ACCEPT_POLL_S = 0.2
#: How long a forwarded connection may take to reach its target.
UPSTREAM_CONNECT_TIMEOUT_S = 2.0
#: Bound on connections held at once (forwarded pairs plus blackholed sockets).
MAX_CONNECTIONS = 256
PUMP_CHUNK_BYTES = 65536


def _abort(s: socket.socket) -> None:
    """Closes `s` with a reset (SO_LINGER 0), so the peer sees the drop at once."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target` until cut; see the module doc."""

    def __init__(self, target: tuple[str, int], name: str = "proxy"):
        self.target = target
        self.name = name
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Port 0: the kernel picks a free port and we hold it, so nothing can race us.
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(ACCEPT_POLL_S)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._held: set[socket.socket] = set()
        self._half_closed: dict[tuple[socket.socket, socket.socket], int] = {}
        self._cut = False
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor: Optional[threading.Thread] = None
        #: Connections accepted while forwarding / while cut (for the test's messages).
        self.forwarded = 0
        self.blackholed = 0

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "TcpProxy":
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"{self.name}-accept",
                                          daemon=True)
        self._acceptor.start()
        return self

    # -- control -----------------------------------------------------------------------

    def cut(self) -> None:
        """Drops every live connection; new ones are blackholed until `heal()`."""
        with self._lock:
            self._cut = True
            pairs, self._pairs = self._pairs, set()
            self._half_closed.clear()
        for a, b in pairs:
            _abort(a)
            _abort(b)

    def heal(self) -> None:
        """Closes the blackholed connections and forwards new ones again."""
        with self._lock:
            self._cut = False
            held, self._held = self._held, set()
        for s in held:
            _abort(s)

    def is_cut(self) -> bool:
        with self._lock:
            return self._cut

    def close(self) -> None:
        """Stops accepting and closes every connection; joins the threads (bounded)."""
        self._closed.set()
        with self._lock:
            pairs, self._pairs = self._pairs, set()
            held, self._held = self._held, set()
        for a, b in pairs:
            _abort(a)
            _abort(b)
        for s in held:
            _abort(s)
        if self._acceptor is not None:
            self._acceptor.join(5)
        self._listener.close()
        for t in self._threads:
            t.join(5)

    # -- threads -----------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return  # listener closed
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                full = len(self._pairs) + len(self._held) >= MAX_CONNECTIONS
                if self._cut and not full:
                    self._held.add(client)
                    self.blackholed += 1
                    continue
            if full or self._closed.is_set():
                _abort(client)
                continue
            self._forward(client)

    def _forward(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=UPSTREAM_CONNECT_TIMEOUT_S)
        except OSError:
            _abort(client)  # the target is down: the dialer sees a reset, as from a dead host
            return
        upstream.settimeout(None)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.settimeout(None)
        pair = (client, upstream)
        with self._lock:
            if self._cut:
                # Cut while we were connecting: this connection belongs to the partition.
                self._held.add(client)
                self.blackholed += 1
                upstream.close()
                return
            self._pairs.add(pair)
            self.forwarded += 1
        for src, dst in ((client, upstream), (upstream, client)):
            t = threading.Thread(target=self._pump, args=(pair, src, dst),
                                 name=f"{self.name}-pump", daemon=True)
            t.start()
            self._threads.append(t)
        self._threads = [t for t in self._threads if t.is_alive()]

    def _pump(self, pair, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(PUMP_CHUNK_BYTES)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            # A reset, or the pair was cut under us: end both directions now.
            with self._lock:
                mine = pair in self._pairs
                self._pairs.discard(pair)
            if mine:
                _abort(pair[0])
                _abort(pair[1])
            return
        # A clean end of one direction: pass the FIN on; the last direction to end closes.
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        with self._lock:
            self._half_closed[pair] = self._half_closed.get(pair, 0) + 1
            last = self._half_closed[pair] == 2
            if last:
                del self._half_closed[pair]
                self._pairs.discard(pair)
        if last:
            pair[0].close()
            pair[1].close()
