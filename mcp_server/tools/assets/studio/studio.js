// Foundry Image Studio: the MCP Apps view of generate_image and edit_image.
// It speaks the MCP Apps bridge (JSON-RPC 2.0 over postMessage with the host): ui/initialize, then
// ui/notifications/initialized; it receives ui/notifications/tool-input, tool-result, tool-cancelled and
// host-context-changed (and notifications/progress, when the host forwards them), and sends tools/call and
// resources/read, which the host proxies to the server. Images arrive as resources, read through the host.
(() => {
  "use strict";
  const PROTOCOL_VERSION = "2026-01-26";
  const META_KEY = "io.github.foundry-image-mcp/studio";
  const PARTIAL_URI = /foundry-image:\/\/partials\/[^\s]+/;
  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ bridge
  let nextId = 1;
  const pending = new Map();
  const send = (message) => window.parent.postMessage({ jsonrpc: "2.0", ...message }, "*");
  const notify = (method, params) => send({ method, params: params || {} });
  const request = (method, params) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      send({ id, method, params: params || {} });
    });

  window.addEventListener("message", (event) => {
    const message = event.data;
    if (event.source !== window.parent || !message || message.jsonrpc !== "2.0") return;
    if (message.method === undefined) {
      const waiting = pending.get(message.id);
      if (!waiting) return;
      pending.delete(message.id);
      if (message.error) waiting.reject(new Error(message.error.message || "The host refused the request."));
      else waiting.resolve(message.result);
    } else if (message.id !== undefined) {
      answerHost(message);
    } else {
      const handler = notifications[message.method];
      if (handler) handler(message.params || {});
    }
  });

  function answerHost(message) {
    if (message.method === "ping" || message.method === "ui/resource-teardown") {
      send({ id: message.id, result: {} });
    } else {
      send({ id: message.id, error: { code: -32601, message: `Method not found: ${message.method}` } });
    }
  }

  const notifications = {
    "ui/notifications/tool-input": (params) => startForming(params.arguments || {}),
    "ui/notifications/tool-input-partial": (params) => showPrompt((params.arguments || {}).prompt),
    "ui/notifications/tool-result": (result) => showResult(result),
    "ui/notifications/tool-cancelled": (params) => finishBusy(`Cancelled${params.reason ? `: ${params.reason}` : ""}.`, true),
    "ui/notifications/host-context-changed": (context) => applyContext(context),
    "notifications/progress": (params) => onProgress(params),
  };

  // ------------------------------------------------------------------ state
  const state = {
    input: {}, // the arguments of the tool call that opened the view
    lineage: [], // {uri, imageId, width, height, mime, src, full, structured, meta, frames, loading}
    index: -1,
    busy: 0, // a generation counter; 0 when idle
    frames: [], // partial images of the generation in flight
    painting: false,
    zoomed: false,
  };
  const current = () => state.lineage[state.index];

  function setStatus(text, error) {
    const status = $("status");
    status.textContent = text;
    status.classList.toggle("error", Boolean(error));
  }

  function showPrompt(prompt) {
    if (prompt) $("prompt").textContent = prompt;
  }

  // ------------------------------------------------------------------ the picture forming
  function startForming(args) {
    if (!state.lineage.length) state.input = args;
    state.busy += 1;
    state.frames = [];
    $("studio").setAttribute("aria-busy", "true");
    showPrompt(args.prompt);
    $("empty").hidden = true;
    $("forming").hidden = true;
    setStatus(args.prompt ? `Generating “${args.prompt}”…` : "Generating…");
    setTools(false);
  }

  function finishBusy(text, error) {
    state.busy = 0;
    $("studio").removeAttribute("aria-busy");
    setStatus(text, error);
    setTools(true);
  }

  function onProgress(params) {
    if (!state.busy) return;
    const total = params.total ? ` (${Math.round((100 * params.progress) / params.total)}%)` : "";
    const message = params.message || "Working";
    const found = PARTIAL_URI.exec(message);
    setStatus(found ? message.slice(0, found.index).replace(/:\s*$/, "") + total : message + total);
    if (found) showPartial(found[0], message.slice(0, found.index).replace(/:\s*$/, ""), state.busy);
  }

  async function showPartial(uri, label, generation) {
    try {
      const src = await readImage(uri);
      if (state.busy !== generation) return; // the final image is already there
      state.frames.push({ src, label });
      $("partial").src = src;
      $("partial").alt = label;
      $("partial-caption").textContent = label;
      $("forming").hidden = false;
      $("forming").dataset.count = String(state.frames.length);
    } catch (error) {
      console.warn("partial image unavailable", uri, error);
    }
  }

  async function readImage(uri) {
    const result = await request("resources/read", { uri });
    const content = (result.contents || [])[0];
    if (!content || !content.blob) throw new Error(`No image at ${uri}`);
    return `data:${content.mimeType || "image/png"};base64,${content.blob}`;
  }

  // ------------------------------------------------------------------ results and lineage
  function showResult(result) {
    const structured = result.structuredContent || {};
    const text = (result.content || []).filter((block) => block.type === "text").map((block) => block.text);
    if (result.isError || !structured.uri) {
      const message = (structured.error && structured.error.message) || text.join(" ") || "The call failed.";
      finishBusy(message, true);
      return;
    }
    const known = state.lineage.findIndex((entry) => entry.uri === structured.uri);
    if (known >= 0) {
      finishBusy(doneText(state.lineage[known]));
      select(known);
      return;
    }
    const preview = (result.content || []).find((block) => block.type === "image");
    const entry = {
      uri: structured.uri,
      imageId: structured.image_id,
      width: structured.width,
      height: structured.height,
      mime: structured.mime_type,
      src: preview ? `data:${preview.mimeType};base64,${preview.data}` : "",
      full: false,
      structured,
      meta: (result._meta || {})[META_KEY] || {},
      frames: state.frames,
    };
    const parent = structured.parent;
    if (parent && !state.lineage.some((item) => item.uri === parent.uri)) {
      state.lineage.push(stubEntry(parent));
    }
    state.lineage.push(entry);
    state.frames = [];
    $("forming").hidden = true;
    finishBusy(doneText(entry));
    select(state.lineage.length - 1);
    loadFull(entry);
  }

  const doneText = (entry) =>
    `${entry.structured && entry.structured.kind === "edit" ? "Edited" : "Generated"}: ${entry.width}×${entry.height}.`;

  function stubEntry(parent) {
    const entry = { uri: parent.uri, imageId: parent.image_id, src: "", full: false, structured: null, meta: {}, frames: [] };
    loadFull(entry);
    return entry;
  }

  async function loadFull(entry) {
    try {
      entry.src = await readImage(entry.uri);
      entry.full = true;
      if (!entry.width) {
        const size = await naturalSize(entry.src);
        entry.width = size.width;
        entry.height = size.height;
      }
      renderLineage();
      if (current() === entry || (current() && current().structured && current().structured.parent &&
          current().structured.parent.uri === entry.uri)) {
        select(state.index);
      }
    } catch (error) {
      setStatus(`Could not read ${entry.uri}: ${error.message}`, true);
    }
  }

  const naturalSize = (src) =>
    new Promise((resolve, reject) => {
      const probe = new Image();
      probe.onload = () => resolve({ width: probe.naturalWidth, height: probe.naturalHeight });
      probe.onerror = reject;
      probe.src = src;
    });

  function select(index) {
    if (index < 0 || index >= state.lineage.length) return;
    state.index = index;
    const entry = current();
    const structured = entry.structured || {};
    const label = structured.revised_prompt || structured.prompt || "Earlier image";
    $("viewer").hidden = false;
    $("empty").hidden = true;
    const image = $("image");
    if (entry.src) image.src = entry.src;
    image.alt = label;
    image.dataset.full = String(entry.full);
    setZoom(false);
    $("revised").textContent = structured.revised_prompt || "—";
    $("prompt").textContent = structured.prompt || "—";
    const model = entry.meta.model ? `${entry.meta.model}, ` : "";
    $("model-size").textContent = entry.width ? `${model}${entry.width}×${entry.height}` : model || "—";
    $("options").textContent = describeOptions(structured.options);
    renderFrames(entry.frames);
    const download = $("download");
    download.href = entry.full ? entry.src : "#";
    download.setAttribute("aria-disabled", String(!entry.full));
    download.download = `${entry.imageId || "image"}.${(entry.mime || "image/png").split("/")[1]}`;
    $("details").hidden = false;
    $("tools").hidden = false;
    showCompare(entry);
    if (painted.uri !== entry.uri || painted.width !== (entry.width || 0)) resetMask();
    renderLineage();
  }

  function describeOptions(options) {
    if (!options) return "—";
    return Object.entries(options)
      .filter(([, value]) => value !== null && value !== undefined)
      .map(([key, value]) => `${key}: ${value}`)
      .join(", ");
  }

  function renderFrames(frames) {
    const list = $("frames");
    list.replaceChildren(
      ...(frames || []).map((frame) => {
        const item = document.createElement("li");
        const image = document.createElement("img");
        image.src = frame.src;
        image.alt = frame.label;
        item.append(image);
        return item;
      }),
    );
    list.closest("dd").previousElementSibling.hidden = list.closest("dd").hidden = !(frames && frames.length);
  }

  function showCompare(entry) {
    const parentUri = entry.structured && entry.structured.parent && entry.structured.parent.uri;
    const parent = parentUri && state.lineage.find((item) => item.uri === parentUri);
    const ready = Boolean(parent && parent.src) && !state.zoomed;
    $("compare").hidden = !ready;
    $("before").hidden = !ready;
    $("divider").hidden = !ready;
    if (ready) {
      $("before").src = parent.src;
      $("before").alt = `Before: ${(parent.structured && parent.structured.revised_prompt) || "the earlier image"}`;
      moveSlider();
    }
  }

  function moveSlider() {
    const value = Number($("slider").value);
    $("before").style.clipPath = `inset(0 ${100 - value}% 0 0)`;
    $("divider").style.left = `${value}%`;
    $("slider").setAttribute("aria-valuetext", `Before on the left ${value}%, after on the right`);
  }

  function renderLineage() {
    const list = $("lineage");
    list.replaceChildren(
      ...state.lineage.map((entry, index) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        const words = (entry.structured && (entry.structured.revised_prompt || entry.structured.prompt)) || "earlier image";
        button.setAttribute("aria-label", `Image ${index + 1} of ${state.lineage.length}: ${words}`);
        button.setAttribute("aria-current", String(index === state.index));
        const thumb = document.createElement("img");
        thumb.alt = "";
        if (entry.src) thumb.src = entry.src;
        button.append(thumb);
        button.addEventListener("click", () => select(index));
        item.append(button);
        return item;
      }),
    );
    $("lineage-panel").hidden = state.lineage.length < 2;
    $("prev").disabled = state.index <= 0;
    $("next").disabled = state.index >= state.lineage.length - 1;
  }

  function setZoom(zoomed) {
    state.zoomed = zoomed && !state.painting;
    $("image").classList.toggle("zoomed", state.zoomed);
    $("frame").classList.toggle("zoomed", state.zoomed);
    $("image").setAttribute("aria-pressed", String(state.zoomed));
    if (current()) showCompare(current());
  }

  function setTools(enabled) {
    for (const id of ["refine", "refine-go", "paint-toggle", "clear-mask"]) $(id).disabled = !enabled;
    $("mask-go").disabled = !enabled || !painted.count;
  }

  // ------------------------------------------------------------------ refine and masked edits
  async function runEdit(prompt, mask) {
    const entry = current();
    if (!entry || state.busy) return;
    const args = { prompt, images: [entry.uri] };
    if (mask) args.mask = mask;
    for (const key of ["quality", "partial_images"]) {
      if (state.input[key] !== undefined) args[key] = state.input[key];
    }
    startForming(args);
    const generation = state.busy;
    try {
      const result = await request("tools/call", {
        name: "edit_image",
        arguments: args,
        _meta: { progressToken: `studio-${Date.now()}-${generation}` },
      });
      if (state.busy === generation) showResult(result);
    } catch (error) {
      finishBusy(`edit_image failed: ${error.message}`, true);
    }
  }

  // Sandboxed frames may not submit forms (no allow-forms), so the box is not a <form>: a button and Enter.
  function refine() {
    const prompt = $("refine").value.trim();
    if (!prompt) {
      setStatus("Describe the change first.", true);
      $("refine").focus();
      return;
    }
    runEdit(prompt, null);
  }
  $("refine-go").addEventListener("click", refine);
  $("refine").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      refine();
    }
  });

  $("mask-go").addEventListener("click", () => {
    const prompt = $("refine").value.trim();
    if (!prompt) {
      setStatus("Describe what to paint in the Change box first.", true);
      $("refine").focus();
      return;
    }
    runEdit(prompt, maskDataUrl());
  });

  // ------------------------------------------------------------------ painting a mask
  const painted = { bits: null, width: 0, height: 0, count: 0, cursor: null };
  const canvas = $("mask");
  const context = canvas.getContext("2d", { willReadFrequently: true });

  function resetMask() {
    const entry = current();
    painted.uri = entry ? entry.uri : null;
    painted.width = entry && entry.width ? entry.width : 0;
    painted.height = entry && entry.height ? entry.height : 0;
    painted.bits = new Uint8Array(painted.width * painted.height);
    painted.count = 0;
    canvas.width = painted.width || 1;
    canvas.height = painted.height || 1;
    context.clearRect(0, 0, canvas.width, canvas.height);
    setTools(!state.busy);
  }

  function setPainting(on) {
    state.painting = on && Boolean(painted.width);
    if (state.painting) setZoom(false);
    canvas.hidden = !state.painting;
    canvas.tabIndex = state.painting ? 0 : -1;
    $("paint-toggle").setAttribute("aria-pressed", String(state.painting));
    if (state.painting) canvas.focus();
  }

  const erasing = () => document.querySelector('input[name="mode"]:checked').value === "eraser";
  const brushRadius = () => {
    const rect = canvas.getBoundingClientRect();
    const scale = rect.width ? canvas.width / rect.width : 1;
    return Math.max(1, (Number($("brush-size").value) / 2) * scale);
  };

  function stamp(cx, cy) {
    const radius = brushRadius();
    const x0 = Math.max(0, Math.floor(cx - radius));
    const y0 = Math.max(0, Math.floor(cy - radius));
    const x1 = Math.min(painted.width - 1, Math.ceil(cx + radius));
    const y1 = Math.min(painted.height - 1, Math.ceil(cy + radius));
    if (x1 < x0 || y1 < y0) return;
    const region = context.getImageData(x0, y0, x1 - x0 + 1, y1 - y0 + 1);
    const value = erasing() ? 0 : 1;
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const dx = x + 0.5 - cx;
        const dy = y + 0.5 - cy;
        if (dx * dx + dy * dy > radius * radius) continue;
        const bit = y * painted.width + x;
        painted.count += value - painted.bits[bit];
        painted.bits[bit] = value;
        const at = ((y - y0) * region.width + (x - x0)) * 4;
        region.data[at] = 230;
        region.data[at + 1] = 40;
        region.data[at + 2] = 60;
        region.data[at + 3] = value ? 255 : 0;
      }
    }
    context.putImageData(region, x0, y0);
    setTools(!state.busy);
  }

  function strokeTo(point) {
    const last = painted.cursor;
    if (last) {
      const distance = Math.hypot(point.x - last.x, point.y - last.y);
      const steps = Math.max(1, Math.ceil(distance / Math.max(1, brushRadius() / 3)));
      for (let step = 1; step <= steps; step++) {
        stamp(last.x + ((point.x - last.x) * step) / steps, last.y + ((point.y - last.y) * step) / steps);
      }
    } else {
      stamp(point.x, point.y);
    }
    painted.cursor = point;
  }

  const toCanvas = (event) => {
    const rect = canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - rect.left) * canvas.width) / rect.width,
      y: ((event.clientY - rect.top) * canvas.height) / rect.height,
    };
  };

  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    painted.cursor = null;
    strokeTo(toCanvas(event));
  });
  canvas.addEventListener("pointermove", (event) => {
    if (event.buttons & 1) strokeTo(toCanvas(event));
  });
  canvas.addEventListener("pointerup", () => {
    painted.cursor = null;
  });
  canvas.addEventListener("keydown", (event) => {
    const step = Math.max(4, brushRadius());
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    const at = painted.keyboard || { x: painted.width / 2, y: painted.height / 2 };
    if (moves[event.key]) {
      const [dx, dy] = moves[event.key];
      const next = { x: Math.min(painted.width, Math.max(0, at.x + dx)), y: Math.min(painted.height, Math.max(0, at.y + dy)) };
      if (event.shiftKey) {
        painted.cursor = at;
        strokeTo(next);
      }
      painted.keyboard = next;
      setStatus(`Brush at ${Math.round(next.x)}, ${Math.round(next.y)}; Space paints.`);
    } else if (event.key === " " || event.key === "Enter") {
      painted.cursor = null;
      strokeTo(at);
      painted.keyboard = at;
    } else if (event.key === "Escape") {
      setPainting(false);
      $("paint-toggle").focus();
    } else {
      return;
    }
    event.preventDefault();
  });

  function maskDataUrl() {
    // The image's size, opaque everywhere except the painted pixels, which are fully transparent.
    const out = document.createElement("canvas");
    out.width = painted.width;
    out.height = painted.height;
    const outContext = out.getContext("2d");
    const pixels = outContext.createImageData(painted.width, painted.height);
    for (let bit = 0; bit < painted.bits.length; bit++) pixels.data[bit * 4 + 3] = painted.bits[bit] ? 0 : 255;
    outContext.putImageData(pixels, 0, 0);
    return out.toDataURL("image/png");
  }

  $("paint-toggle").addEventListener("click", () => setPainting(!state.painting));
  $("download").addEventListener("click", (event) => {
    if (!current() || !current().full) event.preventDefault();
  });
  $("clear-mask").addEventListener("click", resetMask);

  // ------------------------------------------------------------------ zoom, slider, lineage controls
  $("image").addEventListener("click", () => setZoom(!state.zoomed));
  $("image").addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      setZoom(!state.zoomed);
    }
  });
  $("slider").addEventListener("input", moveSlider);
  $("prev").addEventListener("click", () => select(state.index - 1));
  $("next").addEventListener("click", () => select(state.index + 1));
  $("lineage").addEventListener("keydown", (event) => {
    const delta = { ArrowLeft: -1, ArrowRight: 1 }[event.key];
    if (!delta) return;
    event.preventDefault();
    select(state.index + delta);
    const buttons = $("lineage").querySelectorAll("button");
    if (buttons[state.index]) buttons[state.index].focus();
  });

  // ------------------------------------------------------------------ host context, size, handshake
  function applyContext(context) {
    if (context.theme === "dark" || context.theme === "light") document.documentElement.dataset.theme = context.theme;
    const variables = (context.styles && context.styles.variables) || {};
    for (const [name, value] of Object.entries(variables)) {
      if (value) document.documentElement.style.setProperty(name, value);
    }
    const dimensions = context.containerDimensions || {};
    const limit = dimensions.height || dimensions.maxHeight;
    if (limit) document.documentElement.style.setProperty("--studio-max-image-height", `${Math.max(160, limit - 160)}px`);
  }

  let reported = "";
  const observer = new ResizeObserver(() => {
    // The content's own size (not the frame's): the host sizes the frame to it.
    const box = $("studio").getBoundingClientRect();
    const size = { width: Math.ceil(box.width), height: Math.ceil(box.height) };
    const key = `${size.width}x${size.height}`;
    if (key !== reported) {
      reported = key;
      notify("ui/notifications/size-changed", size);
    }
  });

  async function connect() {
    try {
      const result = await request("ui/initialize", {
        protocolVersion: PROTOCOL_VERSION,
        appInfo: { name: "foundry-image-studio", title: "Foundry Image Studio", version: "1" },
        appCapabilities: { availableDisplayModes: ["inline"] },
      });
      applyContext(result.hostContext || {});
      notify("ui/notifications/initialized", {});
      setStatus(`Connected to ${(result.hostInfo && result.hostInfo.name) || "the host"}.`);
      observer.observe($("studio"));
    } catch (error) {
      setStatus(`The host did not answer ui/initialize: ${error.message}`, true);
    }
  }

  setTools(false);
  connect();
})();
