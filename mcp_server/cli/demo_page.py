"""The demo's HTML page: both images side by side with what produced them, so a person sees it works."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1b1b1b; background: #fafafa; }
h1 { font-size: 1.4rem; } .steps { display: flex; gap: 2rem; flex-wrap: wrap; }
figure { margin: 0; background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 1rem; max-width: 620px; }
img { max-width: 100%; border-radius: 4px; } dt { font-weight: 600; margin-top: .5rem; }
dd { margin: 0; } code, pre { background: #f0f0f0; border-radius: 4px; padding: .1rem .3rem; }
pre { white-space: pre-wrap; padding: .5rem; }
"""


def demo_page(steps: list[tuple[str, dict[str, Any], dict[str, Any], float]], endpoint: str) -> str:
    """One figure per (tool, arguments, structuredContent, seconds) step; image paths are made relative."""
    figures = "\n".join(_figure(*step) for step in steps)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>foundry-image-mcp demo</title><style>{STYLE}</style></head>
<body>
<h1>foundry-image-mcp demo</h1>
<p>Both images were made through the MCP server over stdio, against the local Foundry emulator at
<code>{html.escape(endpoint)}</code> (no Azure account; the emulator renders placeholder pictures).</p>
<div class="steps">
{figures}
</div>
</body></html>
"""


def _figure(tool: str, arguments: dict[str, Any], meta: dict[str, Any], seconds: float) -> str:
    name = Path(meta["path"]).name
    rows = {
        "Prompt": arguments.get("prompt"),
        "Revised prompt": meta.get("revised_prompt"),
        "Options": json.dumps(meta.get("options") or {}, indent=1),
        "Result": f"{meta['width']}×{meta['height']} {meta['mime_type']}, {meta['bytes']:,} bytes in {seconds:.2f} s",
        "Resource": meta.get("uri"),
        "File": meta.get("path"),
        "Foundry": f"response {meta.get('response_id')}, agent {meta.get('agent_name')}:{meta.get('agent_version')}",
    }
    if meta.get("parent"):
        rows["Continues"] = f"{meta['parent']['uri']} (previous_response_id {meta['parent']['response_id']})"
    details = "\n".join(
        f"<dt>{html.escape(k)}</dt><dd>{_value(k, v)}</dd>" for k, v in rows.items() if v not in (None, "")
    )
    return f"""<figure>
<h2><code>{html.escape(tool)}</code></h2>
<a href="{html.escape(name)}"><img src="{html.escape(name)}" alt="{html.escape(str(arguments.get("prompt")))}"></a>
<dl>
{details}
</dl>
</figure>"""


def _value(key: str, value: Any) -> str:
    text = html.escape(str(value))
    return f"<pre>{text}</pre>" if key == "Options" else text
