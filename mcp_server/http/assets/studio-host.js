// A minimal MCP Apps host: an MCP client over streamable HTTP (fetch, protocol 2025-11-25) that renders the
// tool's ui:// view in a sandboxed iframe and implements the host side of the Apps bridge (JSON-RPC 2.0 over
// postMessage): it answers ui/initialize, sends tool-input, forwards progress, sends tool-result and
// host-context-changed, and proxies the view's tools/call and resources/read to the server.
(() => {
  "use strict";
  const MCP_URL = "/mcp";
  const PROTOCOL = "2025-11-25";
  const APPS = "io.modelcontextprotocol/ui";
  const APP_MIME = "text/html;profile=mcp-app";
  const FALLBACK_VIEW = "ui://foundry-image/studio.html";
  const RESTRICTIVE_CSP =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; media-src data:; " +
    "connect-src 'none'; frame-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'";
  const $ = (id) => document.getElementById(id);

  class AuthNeeded extends Error {}

  // ---------------------------------------------------------------- MCP over streamable HTTP
  const mcp = {
    token: null,
    session: null,
    initialized: false,
    nextId: 1,

    headers() {
      const headers = { Accept: "application/json, text/event-stream", "Content-Type": "application/json" };
      if (this.session) headers["Mcp-Session-Id"] = this.session;
      if (this.initialized) headers["MCP-Protocol-Version"] = PROTOCOL;
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      return headers;
    },

    async post(message, onNotification) {
      const response = await fetch(MCP_URL, { method: "POST", headers: this.headers(), body: JSON.stringify(message) });
      if (response.status === 401) throw new AuthNeeded("The server asks for an access token.");
      const session = response.headers.get("mcp-session-id");
      if (session) this.session = session;
      if (message.id === undefined) {
        if (!response.ok) throw new Error(`The server answered ${response.status} to ${message.method}.`);
        return null;
      }
      const type = response.headers.get("content-type") || "";
      if (type.includes("text/event-stream")) return this.readEvents(response, message.id, onNotification);
      if (!type.includes("application/json")) {
        throw new Error(`The server answered ${response.status}: ${(await response.text()).slice(0, 200)}`);
      }
      return response.json();
    },

    async readEvents(response, id, onNotification) {
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = event
            .split("\n")
            .filter((line) => line.startsWith("data:"))
            .map((line) => line.slice(5).replace(/^ /, ""))
            .join("\n");
          if (!data) continue;
          const message = JSON.parse(data);
          if (message.method === undefined && message.id === id) {
            reader.cancel().catch(() => {});
            return message;
          }
          if (message.method !== undefined && message.id === undefined && onNotification) onNotification(message);
        }
      }
      throw new Error("The server's event stream ended without an answer.");
    },

    async request(method, params, onNotification) {
      const answer = await this.post({ jsonrpc: "2.0", id: this.nextId++, method, params }, onNotification);
      if (answer.error) throw Object.assign(new Error(answer.error.message), { rpc: answer.error });
      return answer.result;
    },

    async connect() {
      this.session = null;
      this.initialized = false;
      const result = await this.request("initialize", {
        protocolVersion: PROTOCOL,
        capabilities: { extensions: { [APPS]: { mimeTypes: [APP_MIME] } } },
        clientInfo: { name: "foundry-image-studio-host", title: "Foundry Image Studio (browser host)", version: "1" },
      });
      await this.post({ jsonrpc: "2.0", method: "notifications/initialized" });
      this.initialized = true;
      return result;
    },
  };

  // ---------------------------------------------------------------- the host page
  const host = { server: null, tools: {}, views: {}, view: null, tokenSeq: 0 };

  function status(text, error) {
    $("host-status").textContent = text;
    $("host-status").classList.toggle("error", Boolean(error));
  }

  async function start() {
    try {
      host.server = await mcp.connect();
      const listed = await mcp.request("tools/list", {});
      host.tools = Object.fromEntries(listed.tools.map((tool) => [tool.name, tool]));
      $("token-form").hidden = true;
      $("generate-form").hidden = false;
      status(`Connected to ${host.server.serverInfo.title || host.server.serverInfo.name} ${host.server.serverInfo.version}.`);
    } catch (error) {
      if (error instanceof AuthNeeded) {
        $("token-form").hidden = false;
        $("generate-form").hidden = true;
        status(mcp.token ? "That token was refused; try another." : error.message, true);
        $("token").focus();
      } else {
        status(`Could not connect: ${error.message}`, true);
      }
    }
  }

  async function viewResource(toolName) {
    const tool = host.tools[toolName] || {};
    const uri = (tool._meta && tool._meta.ui && tool._meta.ui.resourceUri) || FALLBACK_VIEW;
    if (!host.views[uri]) {
      const read = await mcp.request("resources/read", { uri });
      const content = read.contents.find((item) => item.mimeType === APP_MIME) || read.contents[0];
      host.views[uri] = content.text !== undefined ? content.text : atob(content.blob);
    }
    return host.views[uri];
  }

  const withCsp = (html) =>
    html.replace(/<head([^>]*)>/i, `<head$1><meta http-equiv="Content-Security-Policy" content="${RESTRICTIVE_CSP}">`);

  function theme() {
    const chosen = $("theme").value;
    if (chosen !== "system") return chosen;
    return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function hostContext(toolName) {
    return {
      theme: theme(),
      displayMode: "inline",
      availableDisplayModes: ["inline"],
      containerDimensions: { maxWidth: $("view-slot").clientWidth || 960 },
      locale: navigator.language,
      timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone,
      userAgent: "foundry-image-mcp studio host",
      platform: "web",
      toolInfo: host.tools[toolName] ? { tool: host.tools[toolName] } : undefined,
    };
  }

  // ---------------------------------------------------------------- one view: an iframe and its bridge
  function openView(html, toolName) {
    const frame = document.createElement("iframe");
    frame.title = "Foundry Image Studio view";
    frame.setAttribute("sandbox", "allow-scripts allow-downloads");
    const view = { frame, toolName, ready: null, markReady: null, forwarding: new Set() };
    view.ready = new Promise((resolve) => (view.markReady = resolve));
    host.view = view;
    $("view-slot").replaceChildren(frame);
    frame.srcdoc = withCsp(html);
    return view;
  }

  const toView = (view, message) => view.frame.contentWindow.postMessage({ jsonrpc: "2.0", ...message }, "*");

  window.addEventListener("message", (event) => {
    const view = host.view;
    const message = event.data;
    if (!view || event.source !== view.frame.contentWindow || !message || message.jsonrpc !== "2.0") return;
    if (message.method === undefined) return; // the host sends the view no requests that need answers here
    if (message.id === undefined) onViewNotification(view, message);
    else
      answerView(view, message)
        .then((result) => toView(view, { id: message.id, result }))
        .catch((error) =>
          toView(view, { id: message.id, error: error.rpc || { code: -32603, message: error.message } }),
        );
  });

  function onViewNotification(view, message) {
    const params = message.params || {};
    if (message.method === "ui/notifications/initialized") view.markReady();
    else if (message.method === "ui/notifications/size-changed" && params.height) {
      view.frame.style.height = `${Math.ceil(params.height) + 2}px`;
    } else if (message.method === "notifications/message") console.info("view:", params.data);
  }

  async function answerView(view, message) {
    const params = message.params || {};
    switch (message.method) {
      case "ui/initialize":
        return {
          protocolVersion: params.protocolVersion || "2026-01-26",
          hostInfo: { name: "foundry-image-studio-host", title: "Foundry Image Studio", version: "1" },
          hostCapabilities: { serverTools: {}, serverResources: {}, logging: {}, openLinks: {} },
          hostContext: hostContext(view.toolName),
        };
      case "ping":
      case "ui/message":
      case "ui/update-model-context":
        return {};
      case "ui/request-display-mode":
        return { mode: "inline" };
      case "ui/open-link":
        window.open(String(params.url), "_blank", "noopener,noreferrer");
        return {};
      case "tools/call": {
        const tool = host.tools[params.name];
        const visibility = (tool && tool._meta && tool._meta.ui && tool._meta.ui.visibility) || ["model", "app"];
        if (!tool || !visibility.includes("app")) {
          throw Object.assign(new Error(`No tool ${params.name} for views`), { rpc: { code: -32602, message: `Unknown tool ${params.name}` } });
        }
        const token = params._meta && params._meta.progressToken;
        return mcp.request("tools/call", params, (note) => forwardProgress(view, note, token));
      }
      case "resources/read":
        return mcp.request("resources/read", { uri: params.uri });
      default:
        throw Object.assign(new Error("not found"), { rpc: { code: -32601, message: `Method not found: ${message.method}` } });
    }
  }

  function forwardProgress(view, note, token) {
    if (note.method !== "notifications/progress") return;
    if (token !== undefined && note.params && note.params.progressToken !== token) return;
    view.ready.then(() => host.view === view && toView(view, { method: note.method, params: note.params }));
  }

  // ---------------------------------------------------------------- a generation started from the prompt box
  async function generate(event) {
    event.preventDefault();
    const args = {
      prompt: $("prompt").value.trim(),
      size: $("size").value,
      quality: $("quality").value,
      partial_images: Number($("partials").value) || 0,
    };
    if (!args.prompt) return;
    $("generate").disabled = true;
    status("Generating…");
    try {
      const view = openView(await viewResource("generate_image"), "generate_image");
      view.ready.then(() => toView(view, { method: "ui/notifications/tool-input", params: { arguments: args } }));
      const token = `host-${++host.tokenSeq}`;
      let result;
      try {
        result = await mcp.request(
          "tools/call",
          { name: "generate_image", arguments: args, _meta: { progressToken: token } },
          (note) => forwardProgress(view, note, token),
        );
      } catch (error) {
        if (error instanceof AuthNeeded) throw error;
        result = { content: [{ type: "text", text: error.message }], isError: true };
      }
      await view.ready;
      toView(view, { method: "ui/notifications/tool-result", params: result });
      status(result.isError ? "generate_image failed; the view says why." : "Done: refine, paint or compare in the view.", result.isError);
    } catch (error) {
      if (error instanceof AuthNeeded) await start();
      else status(`generate_image failed: ${error.message}`, true);
    } finally {
      $("generate").disabled = false;
    }
  }

  function applyTheme() {
    document.documentElement.dataset.theme = theme();
    const view = host.view;
    if (view) view.ready.then(() => toView(view, { method: "ui/notifications/host-context-changed", params: { theme: theme() } }));
  }

  function init() {
    const wanted = new URLSearchParams(location.search).get("theme");
    if (["light", "dark", "system"].includes(wanted)) $("theme").value = wanted;
    document.documentElement.dataset.theme = theme();
    $("theme").addEventListener("change", applyTheme);
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", applyTheme);
    $("generate-form").addEventListener("submit", generate);
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      mcp.token = $("token").value.trim();
      $("token").value = "";
      start();
    });
    start();
  }

  init();
})();
