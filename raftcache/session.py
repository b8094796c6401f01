"""Client-side bookkeeping of an exactly-once session (used by the replica for its own writes
and by the network client): issue seqs, and know the lowest one still unanswered (the `ack`
sent with every write, which lets the replicated session table drop older results)."""

from __future__ import annotations

import secrets


class ClientSession:
    def __init__(self) -> None:
        self.client_id = 0
        self.rotate()

    def rotate(self) -> None:
        """Start a new session (a new random client id, seqs from 1)."""
        self.client_id = secrets.randbits(62) + 1
        self.next_seq = 1
        self.low = 1  # every seq below has been answered
        self.outstanding: set[int] = set()

    def issue(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        self.outstanding.add(seq)
        return seq

    def answered(self, seq: int) -> None:
        self.outstanding.discard(seq)
        while self.low < self.next_seq and self.low not in self.outstanding:
            self.low += 1
