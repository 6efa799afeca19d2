"""foundry-image-mcp: an MCP server for image generation and editing on Azure AI Foundry Agent Service."""

__version__ = "0.1.0"

__all__ = ["__version__"]
