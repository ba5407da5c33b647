"""What one client may hold (SPEC 18): connections per listener and per peer address, and
bytes of unfinished header blocks and bodies, over all and per peer address.

Pure bookkeeping, no I/O: the serving layer asks before it takes and gives back when the
connection or the read is over. A peer address is the TCP peer's, never a header's: an
``X-Forwarded-For`` line costs the sender nothing to forge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: One peer address may hold this share of ``limits.max_buffered``.
ADDRESS_SHARE = 4


@dataclass
class Connections:
    """Open connections of one listener, in all and per peer address."""

    total: int = 0
    _by_address: dict[str, int] = field(default_factory=dict)

    def open(self, address: str, cap: int, per_address: int) -> str | None:
        """None when the connection may stay open (and is counted); else which cap it
        hit (``"listener"`` or ``"address"``)."""
        if self.total >= cap:
            return "listener"
        held = self._by_address.get(address, 0)
        if held >= per_address:
            return "address"
        self._by_address[address] = held + 1
        self.total += 1
        return None

    def close(self, address: str) -> None:
        held = self._by_address.get(address, 0) - 1
        if held > 0:
            self._by_address[address] = held
        else:
            self._by_address.pop(address, None)
        self.total -= 1

    def of(self, address: str) -> int:
        return self._by_address.get(address, 0)


@dataclass
class Budget:
    """Bytes of unfinished header blocks and of bodies being read, not yet verified:
    at most ``limit`` in all and ``limit // ADDRESS_SHARE`` per peer address (the limit is
    ``limits.max_buffered`` of the config serving when asked: a reload applies it)."""

    held: int = 0
    _by_address: dict[str, int] = field(default_factory=dict)

    def fits(self, address: str, size: int, limit: int) -> bool:
        """Whether ``size`` more bytes from ``address`` stay within both bounds."""
        return (self.held + size <= limit
                and self._by_address.get(address, 0) + size <= limit // ADDRESS_SHARE)

    def take(self, address: str, size: int, limit: int) -> bool:
        """Count ``size`` bytes as held by ``address``; False (and nothing counted) when
        they would not fit."""
        if not self.fits(address, size, limit):
            return False
        self.held += size
        self._by_address[address] = self._by_address.get(address, 0) + size
        return True

    def give(self, address: str, size: int) -> None:
        """Bytes ``address`` held are no longer held."""
        if size <= 0:
            return
        self.held -= size
        left = self._by_address.get(address, 0) - size
        if left > 0:
            self._by_address[address] = left
        else:
            self._by_address.pop(address, None)

    def of(self, address: str) -> int:
        return self._by_address.get(address, 0)
