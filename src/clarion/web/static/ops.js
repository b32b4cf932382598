// The operator dashboard (/ui/ops): sign in with an admin key (exchanged for an HttpOnly,
// SameSite=Strict session cookie; every change also sends the session's CSRF secret),
// then queues, rates and P0 latency over 15 minutes, breakers, dead letters, kill
// switches and blocked senders, refreshed every five seconds.
(() => {
  "use strict";

  const $ = (selector) => document.querySelector(selector);
  const EVERY_MS = 5000;
  let csrf = null;
  let timer = null;

  async function call(method, path, body) {
    const headers = { "Content-Type": "application/json" };
    if (csrf && method !== "GET") headers["X-CSRF-Token"] = csrf;
    const answer = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const doc = answer.status === 204 ? null : await answer.json();
    if (!answer.ok) throw Object.assign(new Error((doc && doc.message) || answer.status), { status: answer.status });
    return doc;
  }

  function cell(text, className = "") {
    return Object.assign(document.createElement("td"), { textContent: text, className });
  }

  function button(text, action) {
    const made = Object.assign(document.createElement("button"), { type: "button", textContent: text });
    made.addEventListener("click", async () => {
      made.disabled = true;
      try { await action(); } finally { made.disabled = false; refresh(); }
    });
    return made;
  }

  function fill(table, rows) {
    $(`${table} tbody`).replaceChildren(...rows);
  }

  function ago(iso) {
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    return seconds < 90 ? `${seconds.toFixed(0)} s ago` : `${(seconds / 60).toFixed(0)} min ago`;
  }

  function chart(id, values) {
    const svg = $(id);
    const shown = values.map((v) => (v === null ? 0 : v));
    const top = Math.max(...shown, 1e-9);
    const points = shown.map((v, i) => `${(i / Math.max(shown.length - 1, 1)) * 300},${100 - (v / top) * 95}`);
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", points.join(" "));
    svg.replaceChildren(line);
  }

  function showOverview(doc) {
    const series = doc.series;
    chart("#chart-accepted", series.map((p) => p.accepted_per_s));
    chart("#chart-delivered", series.map((p) => p.delivered_per_s));
    chart("#chart-p0", series.map((p) => p.p0_p99_s));
    const last = series[series.length - 1];
    $("#now-accepted").textContent = last ? `now ${last.accepted_per_s.toFixed(1)}/s` : "collecting…";
    $("#now-delivered").textContent = last ? `now ${last.delivered_per_s.toFixed(1)}/s` : "collecting…";
    $("#now-p0").textContent = last && last.p0_p99_s !== null ? `now ≤ ${last.p0_p99_s} s` : "no P0 lately";
    const stages = new Map();
    for (const q of doc.queues) {
      if (!stages.has(q.stage)) stages.set(q.stage, { oldest: null });
      const s = stages.get(q.stage);
      s[q.priority] = q.depth;
      if (q.oldest_s !== null) s.oldest = Math.max(s.oldest ?? 0, q.oldest_s);
    }
    fill("#queues", [...stages.entries()].map(([stage, s]) => {
      const tr = document.createElement("tr");
      tr.append(cell(stage), cell(String(s.P0), "num"), cell(String(s.P1), "num"),
        cell(String(s.P2), "num"), cell(s.oldest === null ? "—" : `${s.oldest} s`, "num"));
      return tr;
    }));
    fill("#breakers", Object.entries(doc.breakers).map(([name, state]) => {
      const tr = document.createElement("tr");
      tr.append(cell(name), cell(state.replace("_", "-"), `state-${state}`));
      return tr;
    }));
    $("#dead-count").textContent = `(${doc.dead_letters})`;
  }

  async function showDead() {
    const { items } = await call("GET", "/v1/dead-letters?limit=50");
    fill("#dead", items.map((d) => {
      const tr = document.createElement("tr");
      tr.dataset.id = d.id;
      const actions = cell("");
      actions.append(
        button("Inspect", async () => {
          const detail = await call("GET", `/v1/dead-letters/${encodeURIComponent(d.id)}`);
          $("#dead-detail").textContent = JSON.stringify(detail, null, 2);
          $("#dead-detail").hidden = false;
        }),
        " ",
        button("Replay", () => call("POST", `/v1/dead-letters/${encodeURIComponent(d.id)}/replay`)),
        " ",
        button("Purge", () => call("DELETE", `/v1/dead-letters/${encodeURIComponent(d.id)}`)),
      );
      tr.append(cell(d.id), cell(d.topic), cell(d.error), cell(d.event_ids.join(", ")), actions);
      return tr;
    }));
  }

  async function showKills() {
    const { items } = await call("GET", "/v1/kill-switches");
    fill("#kills", items.filter((k) => !k.lifted_at).map((k) => {
      const tr = document.createElement("tr");
      const actions = cell("");
      actions.append(button("Lift", () => call("DELETE", `/v1/kill-switches/${encodeURIComponent(k.id)}`)));
      tr.append(cell(k.kind), cell(k.value), cell(k.reason), cell(ago(k.created_at)), actions);
      return tr;
    }));
  }

  async function showBlocked() {
    const { items } = await call("GET", "/v1/senders/blocked");
    fill("#blocked", items.map((b) => {
      const tr = document.createElement("tr");
      const actions = cell("");
      actions.append(button("Unblock", () => call("POST", `/v1/senders/${encodeURIComponent(b.sender)}/unblock`)));
      tr.append(cell(b.sender), cell(ago(b.blocked_at)), cell(b.reason), actions);
      return tr;
    }));
  }

  function suppressions(c) {
    // "9 — disabled_type 3 · quiet_hours_dropped 4 · …": why people did not get it.
    const reasons = Object.entries(c.suppressed_by || {}).sort((a, b) => b[1] - a[1])
      .map(([reason, n]) => `${reason} ${n.toLocaleString()}`).join(" · ");
    return cell(reasons ? `${c.suppressed.toLocaleString()} — ${reasons}` : c.suppressed.toLocaleString());
  }

  async function showCampaigns() {
    const { items } = await call("GET", "/v1/campaigns");
    fill("#campaigns", items.slice(0, 20).map((c) => {
      const tr = document.createElement("tr");
      tr.dataset.id = c.id;
      const done = c.delivered + c.suppressed + c.held + c.failed;
      const bar = Object.assign(document.createElement("progress"),
        { max: Math.max(c.targeted, 1), value: done });
      bar.setAttribute("aria-label", `${c.name}: ${done} of ${c.targeted}`);
      const progress = cell("");
      progress.append(bar);
      const actions = cell("");
      if (c.state === "running" || c.state === "scheduled") {
        actions.append(button("Pause", () => call("POST", `/v1/campaigns/${encodeURIComponent(c.id)}/pause`)), " ");
      }
      if (c.state === "paused") {
        actions.append(button("Resume", () => call("POST", `/v1/campaigns/${encodeURIComponent(c.id)}/resume`)), " ");
      }
      if (c.state !== "cancelled") {
        actions.append(button("Cancel", () => call("POST", `/v1/campaigns/${encodeURIComponent(c.id)}/cancel`)));
      }
      tr.append(cell(c.name), cell(c.state), progress, cell(c.targeted.toLocaleString(), "num"),
        cell(c.delivered.toLocaleString(), "num"), suppressions(c), actions);
      return tr;
    }));
  }

  async function refresh() {
    try {
      showOverview(await call("GET", "/ui/ops/overview"));
      await Promise.all([showDead(), showKills(), showBlocked(), showCampaigns()]);
      $("#refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      if (error.status === 401) return signedOut();
      $("#refreshed").textContent = `could not refresh: ${error.message}`;
    }
  }

  function signedIn(session) {
    csrf = session.csrf;
    $("#who").textContent = `— ${session.sender}`;
    $("#signin").hidden = true;
    $("#board").hidden = false;
    refresh();
    clearInterval(timer);
    timer = setInterval(refresh, EVERY_MS);
  }

  function signedOut() {
    csrf = null;
    clearInterval(timer);
    $("#board").hidden = true;
    $("#signin").hidden = false;
    $("#who").textContent = "";
  }

  $("#signin").addEventListener("submit", async (event) => {
    event.preventDefault();
    const problem = $("#signin-problem");
    problem.hidden = true;
    try {
      const session = await call("POST", "/ui/ops/session", { key: $("#key").value });
      $("#key").value = "";
      signedIn(session);
    } catch (error) {
      problem.textContent = error.message;
      problem.hidden = false;
    }
  });

  $("#signout").addEventListener("click", async () => {
    await call("DELETE", "/ui/ops/session");
    signedOut();
  });

  $("#kill").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { [$("#kill-kind").value]: $("#kill-value").value, reason: $("#kill-reason").value };
    try {
      await call("POST", "/v1/kill-switches", body);
      $("#kill-problem").hidden = true;
      $("#kill-value").value = "";
      refresh();
    } catch (error) {
      $("#kill-problem").textContent = error.message;
      $("#kill-problem").hidden = false;
    }
  });

  call("GET", "/ui/ops/session").then((s) => (s.signed_in ? signedIn(s) : signedOut()), signedOut);
})();
