"""Byte all-gather between the tasks of a barrier stage over TCP (a star through rank 0).

Spark's `BarrierTaskContext.allGather` polls its coordinator about once a second (measured:
~1 s per call on local[2], see bench/results/distributed.md), far too slow for a per-step
exchange. It is used once, to publish rank 0's listening address and a random token; then
each other task connects to rank 0 and every all-gather is one round trip: the tasks send
their message, rank 0 answers each with all of them in rank order. Frames are an 8-byte
big-endian length and the bytes.
"""

from __future__ import annotations

import secrets
import socket
import struct

__all__ = ["StarAllGather", "TransportError"]

_LENGTH = struct.Struct(">Q")
_HELLO = struct.Struct(">32sI")  # token, rank


class TransportError(RuntimeError):
    """A peer that did not connect, answer or follow the protocol in time."""


def _recv_exact(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise TransportError("a training task closed its connection mid-exchange")
        got += k
    return buf


def _send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_LENGTH.pack(len(payload)))
    sock.sendall(payload)


def _recv_frame(sock: socket.socket) -> bytearray:
    (length,) = _LENGTH.unpack(_recv_exact(sock, _LENGTH.size))
    return _recv_exact(sock, length)


def _host(address: str) -> str:
    host, _, _ = address.rpartition(":")
    return host.strip("[]") or address


class StarAllGather:
    """`all_gather(bytes) -> list[bytes]` (rank order) for the barrier stage of `context`."""

    def __init__(self, context, timeout_s: float = 600.0) -> None:
        infos = context.getTaskInfos()
        self.rank, self.size = context.partitionId(), len(infos)
        self._peers: list[socket.socket] = []
        self._root: socket.socket | None = None
        host = _host(infos[self.rank].address)
        token = secrets.token_bytes(32)
        server = None
        published = ""
        if self.rank == 0 and self.size > 1:
            server = socket.create_server((host, 0))
            server.settimeout(timeout_s)
            published = f"{host}|{server.getsockname()[1]}|{token.hex()}"
        try:
            root = context.allGather(published)[0]
            if self.size == 1:
                return
            if self.rank == 0:
                self._accept(server, token)
            else:
                root_host, port, hex_token = root.split("|")
                sock = socket.create_connection((root_host, int(port)), timeout=timeout_s)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.sendall(_HELLO.pack(bytes.fromhex(hex_token), self.rank))
                self._root = sock
        except OSError as exc:
            self.close()
            msg = f"task {self.rank}: cannot connect the training tasks: {exc}"
            raise TransportError(msg) from None
        finally:
            if server is not None:
                server.close()

    def _accept(self, server: socket.socket, token: bytes) -> None:
        by_rank: dict[int, socket.socket] = {}
        while len(by_rank) < self.size - 1:
            sock, _ = server.accept()
            sock.settimeout(server.gettimeout())
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            given, rank = _HELLO.unpack(_recv_exact(sock, _HELLO.size))
            if not secrets.compare_digest(given, token) or not 0 < rank < self.size:
                sock.close()  # not one of this stage's tasks
                continue
            by_rank[rank] = sock
        self._peers = [by_rank[r] for r in range(1, self.size)]

    def all_gather(self, message: bytes) -> list[bytes]:
        """Every task's `message`, in rank order."""
        if self.size == 1:
            return [message]
        try:
            if self.rank == 0:
                replies = [message] + [_recv_frame(p) for p in self._peers]
                header = _LENGTH.pack(len(replies)) + b"".join(
                    _LENGTH.pack(len(r)) for r in replies
                )
                answer = b"".join([header, *replies])
                for peer in self._peers:
                    peer.sendall(answer)
                return replies
            _send_frame(self._root, message)
            (count,) = _LENGTH.unpack(_recv_exact(self._root, _LENGTH.size))
            lengths = [_LENGTH.unpack(_recv_exact(self._root, 8))[0] for _ in range(count)]
            return [_recv_exact(self._root, n) for n in lengths]
        except (OSError, struct.error) as exc:
            raise TransportError(f"task {self.rank}: all-gather failed: {exc}") from None

    def close(self) -> None:
        """Close the connections (idempotent)."""
        for sock in [*self._peers, *([self._root] if self._root else [])]:
            sock.close()
        self._peers, self._root = [], None
