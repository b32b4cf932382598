// The preference centre (/ui/preferences#token=…): every type × channel, quiet hours,
// how many, email digests; saved with PATCH /v1/me/preferences, errors shown by their
// field. The user token comes in the URL's fragment, which no server ever sees.
(() => {
  "use strict";

  const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
  const $ = (selector) => document.querySelector(selector);
  const NAMES = { in_app: "In the app", push: "Push", email: "Email", sms: "SMS",
    webhook: "Webhook", live: "Live" };
  const ZONES = ["UTC", "Europe/London", "Europe/Paris", "America/New_York",
    "America/Los_Angeles", "Asia/Tokyo", "Asia/Kolkata", "Australia/Sydney"];

  async function call(method, body) {
    const answer = await fetch("/v1/me/preferences", {
      method,
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const doc = await answer.json();
    if (!answer.ok) throw Object.assign(new Error(doc.message || "refused"), { doc });
    return doc;
  }

  function element(tag, props = {}, ...children) {
    const made = Object.assign(document.createElement(tag), props);
    made.append(...children);
    return made;
  }

  function zones() {
    const all = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : ZONES;
    return ["UTC", ...all.filter((z) => z !== "UTC")];
  }

  function show(prefs) {
    $("#enabled").checked = prefs.enabled;
    const groups = new Map();
    for (const [name, type] of Object.entries(prefs.effective_types)) {
      const group = type.category || "Other";
      if (!groups.has(group)) groups.set(group, []);
      groups.get(group).push([name, type]);
    }
    const sections = [];
    for (const [group, types] of [...groups.entries()].sort()) {
      const table = element("table", {},
        element("thead", {}, element("tr", {}, element("th", { textContent: "" }),
          element("th", { textContent: "On" }), element("th", { textContent: "Where" }))));
      const body = element("tbody");
      for (const [name, type] of types.sort()) body.append(row(name, type));
      table.append(body);
      sections.push(element("section", {}, element("h2", { textContent: group }), table));
    }
    $("#groups").replaceChildren(...sections);

    const zone = $("#quiet-zone");
    zone.replaceChildren(...zones().map((z) => element("option", { value: z, textContent: z })));
    const quiet = prefs.quiet_hours;
    $("#quiet").checked = Boolean(quiet);
    if (quiet) {
      $("#quiet-start").value = quiet.start;
      $("#quiet-end").value = quiet.end;
      zone.value = quiet.timezone || "UTC";
    } else {
      zone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    }
    const caps = prefs.frequency_caps || {};
    $("#per-hour").value = caps.per_hour ?? "";
    $("#per-day").value = caps.per_day ?? "";
    const email = (prefs.channels || {}).email || {};
    $("#digest").value = email.digest || "immediate";
    $("#digest-at").value = email.digest_at || "08:00";
    $("#settings").hidden = false;
  }

  function row(name, type) {
    const tr = element("tr", { className: type.mandatory ? "locked" : "" });
    tr.dataset.type = name;
    const label = element("td", {}, element("strong", { textContent: type.description || name }));
    if (type.mandatory) {
      label.append(element("div", { className: "muted",
        textContent: "Always on: security and account notices cannot be turned off." }));
    }
    const on = element("input", { type: "checkbox", checked: type.enabled,
      disabled: type.mandatory, className: "type-on" });
    on.setAttribute("aria-label", `${type.description || name}: on`);
    const where = element("td");
    for (const channel of type.available.length ? type.available : type.channels) {
      const box = element("input", { type: "checkbox", checked: type.channels.includes(channel),
        disabled: type.mandatory, className: "type-channel", value: channel });
      where.append(element("label", {}, box, ` ${NAMES[channel] || channel} `));
    }
    tr.append(label, element("td", {}, on), where);
    return tr;
  }

  function read() {
    const types = {};
    for (const tr of document.querySelectorAll("tr[data-type]")) {
      if (tr.classList.contains("locked")) continue;
      const channels = [...tr.querySelectorAll(".type-channel")].filter((b) => b.checked)
        .map((b) => b.value);
      types[tr.dataset.type] = { enabled: tr.querySelector(".type-on").checked, channels };
    }
    const number = (id) => ($(id).value === "" ? null : Number($(id).value));
    const perHour = number("#per-hour");
    const perDay = number("#per-day");
    return {
      enabled: $("#enabled").checked,
      types,
      quiet_hours: $("#quiet").checked
        ? { start: $("#quiet-start").value, end: $("#quiet-end").value,
          timezone: $("#quiet-zone").value }
        : null,
      frequency_caps: perHour === null && perDay === null ? null
        : { per_hour: perHour, per_day: perDay },
      channels: { email: { digest: $("#digest").value, digest_at: $("#digest-at").value } },
    };
  }

  function problems(errors) {
    for (const p of document.querySelectorAll("[data-field]")) p.hidden = true;
    for (const { field, reason } of errors) {
      const top = field.split(".")[0];
      const where = document.querySelector(`[data-field="${CSS.escape(top)}"]`) || $("#problem");
      where.textContent = `${field}: ${reason}`;
      where.hidden = false;
    }
  }

  async function save(event) {
    event.preventDefault();
    $("#saved").textContent = "";
    $("#problem").hidden = true;
    try {
      show(await call("PATCH", read()));
      problems([]);
      $("#saved").textContent = "Saved.";
    } catch (error) {
      const doc = error.doc || {};
      problems(doc.errors && doc.errors.length ? doc.errors
        : [{ field: "settings", reason: doc.message || error.message }]);
    }
  }

  async function start() {
    if (!token) {
      $("#problem").textContent = "Open this page from the link in the app: it carries who you are.";
      $("#problem").hidden = false;
      return;
    }
    try {
      show(await call("GET"));
    } catch (error) {
      $("#problem").textContent = `Your settings could not be loaded: ${error.message}`;
      $("#problem").hidden = false;
    }
    $("#settings").addEventListener("submit", save);
  }

  start();
})();
