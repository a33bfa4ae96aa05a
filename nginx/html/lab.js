// The live lab on the landing page: race, chat, event-loop stall, live numbers.
// Plain JavaScript, no build step; it talks to this host only (the page's CSP allows nothing else).
"use strict";

(() => {
  // A browser opens at most this many HTTP/1.1 connections to one host and queues the rest:
  // the most requests this page can have in flight at once (WebSockets do not count). Over
  // HTTP/2 (the TLS port) every request is a stream on one connection, and the cap is gone.
  const BROWSER_CONNECTIONS_PER_HOST = 6;
  const PAGE_PROTOCOL = (performance.getEntriesByType("navigation")[0] || {}).nextHopProtocol || "http/1.1";
  const BROWSER_LIMIT = /^h[23]/.test(PAGE_PROTOCOL) ? Infinity : BROWSER_CONNECTIONS_PER_HOST;
  const RACE_N = { min: 1, max: 30 };
  const RACE_MS = { min: 10, max: 2000 };
  const STALL_MS = { min: 100, max: 3000 };
  const STALL_COUNT = { min: 1, max: BROWSER_CONNECTIONS_PER_HOST };
  // The chat room rule of the services (gateway_common.validation.CHAT_ROOM_PATTERN).
  const CHAT_ROOM_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
  const NUMBERS_REFRESH_MS = 5000;
  const ECHO_INTERVAL_MS = 100;
  const ECHO_WINDOW_MS = 15000;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const WS_BASE = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;

  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function svgElement(tag, attrs, text) {
    const element = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
    if (text !== undefined) element.textContent = text;
    return element;
  }

  function html(tag, attrs = {}, text) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
    if (text !== undefined) element.textContent = text;
    return element;
  }

  // An integer from a form field within [min, max], or an Error saying what is wrong.
  function readInt(input, bounds, label) {
    const raw = input.value.trim();
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < bounds.min || value > bounds.max) {
      throw new Error(`${label} must be a whole number from ${bounds.min} to ${bounds.max}`);
    }
    return value;
  }

  function showError(element, error) {
    element.hidden = !error;
    element.textContent = error ? error.message : "";
  }

  async function getJson(url) {
    const response = await fetch(url, { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) {
      const message = body && body.error ? body.error.message : "";
      throw new Error(`${url}: HTTP ${response.status} ${message}`);
    }
    return body;
  }

  // Declared capacity from /healthz: requests one service serves at the same time.
  const capacities = {};
  async function loadCapacities() {
    const [wsgi, asgi] = await Promise.all([getJson("/wsgi/healthz"), getJson("/asgi/healthz")]);
    capacities.wsgi = {
      value: wsgi.workers * wsgi.threads,
      text: `${wsgi.workers} workers × ${wsgi.threads} thread${wsgi.threads === 1 ? "" : "s"}`,
      workers: wsgi.workers,
    };
    // An event loop does not hold a thread while a request waits on I/O.
    capacities.asgi = {
      value: Infinity,
      text: `unbounded for I/O (${asgi.workers} event loop${asgi.workers === 1 ? "" : "s"})`,
      workers: asgi.workers,
    };
    return capacities;
  }

  // ---- Live numbers -----------------------------------------------------------------------

  const NUMBER_CELLS = {
    "service:http_requests_in_progress:sum": { cell: "in-flight", digits: 0 },
    "service:http_requests:rate1m": { cell: "rate", digits: 2 },
    "service:server_worker_capacity:sum": { cell: "capacity", digits: 0 },
  };

  // One row per service (variant); the two default services have theirs in the page already.
  function numbersRow(service, interfaceName) {
    const body = document.querySelector("#numbers-table tbody");
    const existing = [...body.rows].find((row) => row.dataset.service === service);
    if (existing) return existing;
    const row = html("tr", { "data-interface": interfaceName, "data-service": service });
    row.append(html("td", {}, `${interfaceName.toUpperCase()} · ${service}`));
    for (const name of ["in-flight", "rate", "capacity"]) row.append(html("td", { class: name }, "–"));
    body.append(row);
    return row;
  }

  async function refreshNumbers() {
    const status = $("numbers-status");
    try {
      const body = await getJson("/lab/metrics.json");
      for (const series of body.data.result) {
        const target = NUMBER_CELLS[series.metric.__name__];
        const { service, interface: interfaceName } = series.metric;
        if (!target || !service || !interfaceName) continue;
        const row = numbersRow(service, interfaceName);
        const value = Number(series.value[1]);
        const cell = row.querySelector(`.${target.cell}`);
        cell.textContent = value.toFixed(target.digits);
        cell.dataset.value = String(value);
      }
      status.textContent = `updated ${new Date().toLocaleTimeString()}`;
      status.dataset.state = "ok";
    } catch (error) {
      status.textContent = `no numbers: ${error.message}`;
      status.dataset.state = "error";
    }
  }

  // ---- Server variants ---------------------------------------------------------------------

  async function loadVariants() {
    const status = $("variants-status");
    try {
      const listed = (await getJson("/variants.json")).variants;
      const rows = listed.map((variant) => {
        const row = html("tr", { "data-variant": variant.name });
        const name = html("td");
        name.append(html("a", { href: `${variant.prefix}healthz` }, variant.name));
        row.append(name);
        for (const text of [variant.framework, variant.interface, variant.server, variant.worker_class]) {
          row.append(html("td", {}, text));
        }
        row.append(html("td", {}, `${variant.workers} × ${variant.threads}`));
        row.append(html("td", { class: "capacity" }, variant.capacity === null ? "unbounded" : String(variant.capacity)));
        row.append(html("td", {}, variant.websockets ? `${variant.prefix}ws/echo, ${variant.prefix}ws/chat` : "—"));
        return row;
      });
      document.querySelector("#variants-table tbody").replaceChildren(...rows);
      status.textContent = `${listed.length} variants running`;
      status.dataset.state = "ok";
    } catch (error) {
      status.textContent = `no list: ${error.message}`;
      status.dataset.state = "error";
    }
  }

  // ---- Race --------------------------------------------------------------------------------

  let raceRuns = 0;
  let lastRace = null;

  // N requests at once to one service; times in ms from the burst's start.
  async function burst(service, n, ms, runId) {
    const origin = performance.now();
    const requests = [];
    for (let index = 0; index < n; index += 1) {
      // A distinct URL per request: no cache entry or cache lock can tie two of them together.
      const url = `/${service}/io?ms=${ms}&race=${runId}-${index}`;
      const sent = performance.now() - origin;
      requests.push(
        fetch(url, { cache: "no-store" }).then(async (response) => {
          await response.json();
          if (!response.ok) throw new Error(`${service}: HTTP ${response.status} from ${url}`);
          return { index, url, sent, done: performance.now() - origin };
        }),
      );
    }
    const results = await Promise.all(requests);
    for (const result of results) {
      // When the request really left the browser (it may have queued for a connection).
      const entries = performance.getEntriesByName(new URL(result.url, location.href).href);
      const entry = entries[entries.length - 1];
      result.left = entry && entry.requestStart > 0 ? Math.max(result.sent, entry.requestStart - origin) : result.sent;
    }
    return results;
  }

  // Completion times grouped into waves: a new wave starts after a gap of more than half a wait.
  function waves(results, ms) {
    const ends = results.map((result) => result.done).sort((a, b) => a - b);
    const sizes = [];
    let previous = -Infinity;
    for (const end of ends) {
      if (end - previous > ms / 2) sizes.push(0);
      sizes[sizes.length - 1] += 1;
      previous = end;
    }
    return sizes;
  }

  function prediction(service, n, ms) {
    const capacity = capacities[service];
    const effective = Math.min(capacity.value, BROWSER_LIMIT, n);
    const rounds = Math.ceil(n / effective);
    const shown = (value) => (value === Infinity ? "∞" : String(value));
    let limit = shown(capacity.value);
    if (capacity.value > BROWSER_LIMIT) limit = `min(${limit}, ${BROWSER_LIMIT} browser connections)`;
    else if (BROWSER_LIMIT === Infinity && capacity.value === Infinity) limit = `min(∞, ${n})`;
    return {
      effective,
      totalMs: rounds * ms,
      text: `capacity ${capacity.text} → ceil(${n} / ${limit}) × ${ms} ms = ${rounds * ms} ms`,
    };
  }

  function showPrediction(n, ms) {
    const box = $("race-prediction");
    box.replaceChildren();
    for (const service of ["wsgi", "asgi"]) {
      const predicted = prediction(service, n, ms);
      const line = html("p", { "data-service": service, "data-predicted-ms": predicted.totalMs });
      line.append(html("strong", {}, `${service.toUpperCase()} predicted: `), predicted.text);
      box.append(line);
    }
  }

  function drawRace(race) {
    const chart = $("race-chart");
    const width = Math.max(300, Math.round(chart.getBoundingClientRect().width) || 600);
    const rowHeight = 14;
    const left = 48;
    const right = 12;
    const top = 8;
    const gap = 14;
    const axis = 26;
    const n = race.n;
    const height = top + 2 * n * rowHeight + gap + axis;
    const span = Math.max(...race.wsgi.concat(race.asgi).map((result) => result.done), race.ms) * 1.05;
    const x = (ms) => left + ((width - left - right) * ms) / span;
    chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    chart.setAttribute("height", String(height));
    chart.replaceChildren();
    // A guide at every multiple of M: where a wave of requests is expected to finish.
    for (let k = 1; k * race.ms <= span; k += 1) {
      chart.append(svgElement("line", { class: "guide", x1: x(k * race.ms), x2: x(k * race.ms), y1: top, y2: height - axis }));
    }
    const step = niceStep(span);
    for (let tick = 0; tick <= span; tick += step) {
      chart.append(svgElement("text", { class: "tick", x: x(tick), y: height - 8, "text-anchor": "middle" }, tick >= 1000 ? `${tick / 1000} s` : `${tick} ms`));
    }
    ["wsgi", "asgi"].forEach((service, block) => {
      const blockTop = top + block * (n * rowHeight + gap);
      chart.append(svgElement("text", { class: `label ${service}`, x: 4, y: blockTop + Math.min(n, 2) * rowHeight * 0.5 + 5 }, service.toUpperCase()));
      for (const result of race[service]) {
        const y = blockTop + result.index * rowHeight + 2;
        if (result.left - result.sent > 1) {
          chart.append(svgElement("rect", { class: `queued ${service}`, x: x(result.sent), y, width: x(result.left) - x(result.sent), height: rowHeight - 4 }));
        }
        chart.append(
          svgElement("rect", {
            class: `bar ${service}`,
            x: x(result.left),
            y,
            width: Math.max(1, x(result.done) - x(result.left)),
            height: rowHeight - 4,
            "data-service": service,
            "data-index": result.index,
            "data-sent-ms": result.sent.toFixed(1),
            "data-left-ms": result.left.toFixed(1),
            "data-end-ms": result.done.toFixed(1),
          }),
        );
      }
    });
  }

  function niceStep(span) {
    const rough = span / 6;
    const power = 10 ** Math.floor(Math.log10(rough));
    return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= rough);
  }

  function showRaceResult(race) {
    const box = $("race-result");
    box.replaceChildren();
    for (const service of ["wsgi", "asgi"]) {
      const sizes = waves(race[service], race.ms);
      const total = Math.max(...race[service].map((result) => result.done));
      const predicted = prediction(service, race.n, race.ms).totalMs;
      const line = html("p", {
        "data-service": service,
        "data-waves": sizes.join(","),
        "data-measured-ms": Math.round(total),
        "data-predicted-ms": predicted,
      });
      line.append(
        html("strong", {}, `${service.toUpperCase()} measured: `),
        `${Math.round(total)} ms (predicted ${predicted} ms), ${sizes.length} wave${sizes.length === 1 ? "" : "s"} of ${sizes.join(", ")}`,
      );
      box.append(line);
    }
    box.dataset.run = String(race.run);
  }

  async function startRace(event) {
    event.preventDefault();
    const error = $("race-error");
    const button = $("race-start");
    let n;
    let ms;
    try {
      n = readInt($("race-n"), RACE_N, "N");
      ms = readInt($("race-ms"), RACE_MS, "M");
    } catch (problem) {
      showError(error, problem);
      return;
    }
    showError(error, null);
    button.disabled = true;
    $("race").dataset.state = "running";
    try {
      if (!capacities.wsgi) await loadCapacities();
      showPrediction(n, ms);
      raceRuns += 1;
      performance.clearResourceTimings();
      // One service after the other: over HTTP/1.1 they would share the browser's 6 connections.
      const wsgi = await burst("wsgi", n, ms, raceRuns);
      const asgi = await burst("asgi", n, ms, raceRuns);
      lastRace = { run: raceRuns, n, ms, wsgi, asgi };
      drawRace(lastRace);
      showRaceResult(lastRace);
      $("race").dataset.state = "done";
    } catch (problem) {
      showError(error, problem);
      $("race").dataset.state = "failed";
    } finally {
      button.disabled = false;
    }
  }

  // ---- Chat --------------------------------------------------------------------------------

  let chatMembers = 0;

  function chatRoom() {
    const requested = new URLSearchParams(location.search).get("room");
    return requested && CHAT_ROOM_PATTERN.test(requested) ? requested : "lobby";
  }

  function joinChat(room) {
    chatMembers += 1;
    const number = chatMembers;
    const card = html("div", { class: "member", "data-member": number, "data-state": "connecting" });
    const title = html("h3", {}, number === 1 ? "you" : `user ${number}`);
    const status = html("span", { class: "status" }, "connecting…");
    title.append(" ", status);
    const log = html("ul", { class: "log" });
    const form = html("form", { class: "send" });
    const input = html("input", { type: "text", maxlength: 500, "aria-label": `message from member ${number}`, placeholder: "say something" });
    const send = html("button", { type: "submit" }, "Send");
    form.append(input, send);
    card.append(title, log, form);
    $("chat-members").append(card);

    const socket = new WebSocket(`${WS_BASE}/asgi/ws/chat?room=${encodeURIComponent(room)}`);
    let ownId = "";
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "joined") {
        ownId = message.id;
        card.dataset.id = ownId;
        card.dataset.state = "open";
        status.textContent = `connected as ${ownId}`;
        return;
      }
      if (message.type !== "message") return;
      const mine = message.from === ownId;
      const item = html("li", { class: mine ? "mine" : "theirs", "data-from": message.from, "data-text": message.text });
      item.append(html("b", {}, mine ? "me" : message.from), `: ${message.text}`);
      log.append(item);
      log.scrollTop = log.scrollHeight;
    });
    socket.addEventListener("close", (event) => {
      card.dataset.state = "closed";
      status.textContent = `closed (${event.code}${event.reason ? `: ${event.reason}` : ""})`;
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (!text || socket.readyState !== WebSocket.OPEN) return;
      socket.send(text);
      input.value = "";
    });
  }

  // ---- Event-loop stall --------------------------------------------------------------------

  const echoSamples = []; // { sentAt, rtt, socket } in performance.now() ms
  let stallWindow = null;
  let stallRuns = 0;

  function openEchoSockets(count) {
    const sockets = [];
    for (let index = 0; index < count; index += 1) {
      const socket = new WebSocket(`${WS_BASE}/asgi/ws/echo`);
      socket.addEventListener("message", (event) => {
        const sentAt = Number(event.data);
        echoSamples.push({ sentAt, rtt: performance.now() - sentAt, socket: index });
      });
      sockets.push(socket);
    }
    setInterval(() => {
      const now = performance.now();
      for (const socket of sockets) {
        if (socket.readyState === WebSocket.OPEN) socket.send(now.toFixed(3));
      }
      while (echoSamples.length && echoSamples[0].sentAt < now - ECHO_WINDOW_MS) echoSamples.shift();
    }, ECHO_INTERVAL_MS);
    setInterval(drawStall, 250);
    $("stall").dataset.echoSockets = String(count);
  }

  function drawStall() {
    const chart = $("stall-chart");
    const width = Math.max(300, Math.round(chart.getBoundingClientRect().width) || 600);
    const height = 160;
    const left = 60;
    const bottom = 20;
    const now = performance.now();
    const maxRtt = Math.max(100, ...echoSamples.map((sample) => sample.rtt)) * 1.1;
    const x = (t) => left + ((width - left - 8) * (t - (now - ECHO_WINDOW_MS))) / ECHO_WINDOW_MS;
    const y = (rtt) => height - bottom - ((height - bottom - 8) * rtt) / maxRtt;
    chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    chart.replaceChildren();
    if (stallWindow) {
      const end = stallWindow.end || now;
      chart.append(svgElement("rect", { class: "window", x: x(stallWindow.start), y: 8, width: Math.max(1, x(end) - x(stallWindow.start)), height: height - bottom - 8 }));
    }
    const step = niceStep(maxRtt);
    for (let tick = 0; tick <= maxRtt; tick += step) {
      chart.append(svgElement("line", { class: "grid", x1: left, x2: width - 8, y1: y(tick), y2: y(tick) }));
      chart.append(svgElement("text", { class: "tick", x: left - 4, y: y(tick) + 4, "text-anchor": "end" }, `${tick} ms`));
    }
    chart.append(svgElement("text", { class: "tick", x: width - 8, y: height - 4, "text-anchor": "end" }, "last 15 s · echo round trip"));
    for (const sample of echoSamples) {
      chart.append(svgElement("circle", { class: `echo echo-${sample.socket % 4}`, cx: x(sample.sentAt), cy: y(sample.rtt), r: 2.5 }));
    }
  }

  async function startStall(event) {
    event.preventDefault();
    const error = $("stall-error");
    const button = $("stall-start");
    let ms;
    let count;
    try {
      ms = readInt($("stall-ms"), STALL_MS, "ms");
      count = readInt($("stall-count"), STALL_COUNT, "requests");
    } catch (problem) {
      showError(error, problem);
      return;
    }
    const variant = $("stall-variant").value === "threadpool" ? "threadpool" : "blocking";
    showError(error, null);
    button.disabled = true;
    $("stall").dataset.state = "running";
    stallRuns += 1;
    const start = performance.now();
    const baseline = echoSamples.filter((sample) => sample.sentAt > start - 2000).map((sample) => sample.rtt);
    stallWindow = { start, end: null };
    try {
      const requests = [];
      for (let index = 0; index < count; index += 1) {
        requests.push(getJson(`/asgi/io/${variant}?ms=${ms}&stall=${stallRuns}-${index}`));
      }
      await Promise.all(requests);
      stallWindow.end = performance.now();
      // Let the pings sent during the stall come back.
      await sleep(Math.max(300, 3 * ECHO_INTERVAL_MS));
      const during = echoSamples.filter((sample) => sample.sentAt >= start && sample.sentAt <= stallWindow.end);
      const worst = Math.max(0, ...during.map((sample) => sample.rtt));
      const typical = median(baseline);
      const result = $("stall-result");
      result.dataset.variant = variant;
      result.dataset.ms = String(ms);
      result.dataset.maxRttMs = worst.toFixed(1);
      result.dataset.samples = String(during.length);
      result.dataset.run = String(stallRuns);
      const verdict = worst > ms / 2 ? "the event loop stalled" : "the event loop kept answering";
      result.textContent = `${count} × /asgi/io/${variant}?ms=${ms}: worst echo round trip ${Math.round(worst)} ms ` +
        `(${during.length} pings; typical before: ${Math.round(typical)} ms) — ${verdict}.`;
      $("stall").dataset.state = "done";
    } catch (problem) {
      showError(error, problem);
      $("stall").dataset.state = "failed";
    } finally {
      if (stallWindow.end === null) stallWindow.end = performance.now();
      button.disabled = false;
    }
  }

  function median(values) {
    if (!values.length) return 0;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }

  // ---- Start -------------------------------------------------------------------------------

  function start() {
    performance.setResourceTimingBufferSize(1000);
    $("race-protocol").textContent = BROWSER_LIMIT === Infinity
      ? `This page came over ${PAGE_PROTOCOL}: every request is a stream on one connection, so all N are in flight at once.`
      : `This page came over ${PAGE_PROTOCOL}: at most ${BROWSER_LIMIT} requests in flight at once (see below).`;
    $("race").dataset.protocol = PAGE_PROTOCOL;
    $("race-form").addEventListener("submit", startRace);
    $("stall-form").addEventListener("submit", startStall);
    const room = chatRoom();
    $("chat-room").textContent = room;
    joinChat(room);
    $("chat-join").addEventListener("click", () => joinChat(room));
    refreshNumbers();
    setInterval(refreshNumbers, NUMBERS_REFRESH_MS);
    loadVariants();
    loadCapacities()
      .then(() => {
        showPrediction(readIntOr($("race-n"), RACE_N), readIntOr($("race-ms"), RACE_MS));
        $("stall-workers").textContent = String(capacities.asgi.workers);
        // Two echo sockets per event loop: likely at least one on each loop.
        openEchoSockets(Math.min(8, 2 * capacities.asgi.workers));
        document.body.dataset.ready = "true";
      })
      .catch((problem) => showError($("race-error"), problem));
    window.addEventListener("resize", () => lastRace && drawRace(lastRace));
  }

  function readIntOr(input, bounds) {
    try {
      return readInt(input, bounds, "");
    } catch {
      return bounds.min;
    }
  }

  start();
})();
