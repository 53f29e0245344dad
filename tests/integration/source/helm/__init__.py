"""Integration tests of the Helm adapter against real aiohttp servers and the real helm binary."""
