"""stdio layer: the stdio transport, which answers every request the SDK's own stdio reader drops."""
