"""A set of hashes in fixed memory (a Bloom filter), for what waits in the store: whether a record's object
*may* be parked or kept, without holding one entry per waiting record however many wait.

``in`` is never False for a hash added; it is True for one never added about 5 times in a million with 100k
added, once in fifty with a million. A false yes only costs a keyed statement that finds nothing."""

from __future__ import annotations

BITS = 1 << 23
"""1 MiB of bits."""
PROBES = 4
_MASK = BITS - 1


class MaybeSet:
    """Hashes (``hash(...)`` of anything) added; nothing is ever removed."""

    __slots__ = ("_bits", "empty")

    def __init__(self) -> None:
        self._bits = bytearray(BITS // 8)
        self.empty = True
        """Nothing was added yet (every ``in`` is False)."""

    @staticmethod
    def _positions(value: int) -> list[int]:
        value &= 0xFFFF_FFFF_FFFF_FFFF
        low, step = value & 0xFFFF_FFFF, (value >> 32) | 1
        return [(low + i * step) & _MASK for i in range(PROBES)]

    def add(self, value: int) -> None:
        bits = self._bits
        for position in self._positions(value):
            bits[position >> 3] |= 1 << (position & 7)
        self.empty = False

    def __contains__(self, value: object) -> bool:
        if self.empty or not isinstance(value, int):
            return False
        bits = self._bits
        return all(bits[position >> 3] & (1 << (position & 7)) for position in self._positions(value))
