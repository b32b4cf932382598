// <clarion-inbox token="…">: a bell with an unread badge and the person's inbox.
//
// One script tag and a user token (POST /v1/users/{id}/tokens from your backend). It pages
// the inbox by cursor, marks entries read (one, or all), shows grouped entries ("Bob and
// 4,998 others"), and stays live over /v1/me/stream: new entries, read on another device,
// reconnecting by itself from the last message it saw. Notification text is only ever set
// as text, never as markup. Keyboard: the bell is a button; Escape closes the list.
(() => {
  "use strict";

  const PAGE = 20;
  const RETRY_MS = [250, 500, 1000, 2000, 5000];

  class ClarionInbox extends HTMLElement {
    constructor() {
      super();
      this.items = new Map(); // id → item, in the order the list shows them
      this.unread = 0;
      this.cursor = null;
      this.last = null; // the last stream message's id, to resume from
      this.source = null;
      this.failures = 0;
      this.closed = false;
      const root = this.attachShadow({ mode: "open" });
      root.innerHTML = `
        <link rel="stylesheet" href="${this.base}/ui/static/clarion-inbox.css">
        <button class="bell" type="button" aria-haspopup="true" aria-expanded="false">
          <span class="icon" aria-hidden="true">🔔</span>
          <span class="badge" hidden></span>
        </button>
        <section class="panel" hidden aria-label="Notifications">
          <header>
            <h2>Notifications</h2>
            <button class="all" type="button">Mark all read</button>
          </header>
          <p class="empty" hidden>Nothing yet.</p>
          <ul class="list"></ul>
          <button class="more" type="button" hidden>Load more</button>
        </section>`;
      this.$ = (selector) => root.querySelector(selector);
      this.$(".bell").addEventListener("click", () => this.toggle());
      this.$(".all").addEventListener("click", () => this.read({ all: true }));
      this.$(".more").addEventListener("click", () => this.page());
      root.addEventListener("keydown", (e) => {
        if (e.key === "Escape") this.toggle(false);
      });
    }

    get base() {
      return (this.getAttribute("api") || "").replace(/\/$/, "");
    }

    get token() {
      return this.getAttribute("token") || "";
    }

    connectedCallback() {
      this.closed = false;
      this.load();
    }

    disconnectedCallback() {
      this.closed = true;
      if (this.source) this.source.close();
    }

    async call(path, options = {}) {
      const answer = await fetch(this.base + path, {
        ...options,
        headers: {
          Authorization: `Bearer ${this.token}`,
          "Content-Type": "application/json",
        },
      });
      if (!answer.ok) throw new Error(`${path}: ${answer.status}`);
      return answer.status === 204 ? null : answer.json();
    }

    async load() {
      this.items.clear();
      this.cursor = null;
      this.$(".list").replaceChildren();
      // Stream from where the stream stood before this page was read: whatever arrives
      // in between is replayed (and an entry seen twice is only put once).
      this.last = (await this.page()).position || null;
      this.listen();
    }

    async page() {
      const query = new URLSearchParams({ limit: String(PAGE) });
      if (this.cursor) query.set("cursor", this.cursor);
      const found = await this.call(`/v1/me/inbox?${query}`);
      for (const item of found.items) this.put(item, false);
      this.cursor = found.next_cursor;
      this.setUnread(found.unread_count);
      this.$(".more").hidden = !this.cursor;
      return found;
    }

    async listen() {
      if (this.closed) return;
      try {
        const { ticket } = await this.call("/v1/me/stream-tickets", { method: "POST" });
        const query = new URLSearchParams({ ticket });
        if (this.last) query.set("since", this.last);
        const source = new EventSource(`${this.base}/v1/me/stream?${query}`);
        this.source = source;
        const heard = (handler) => (event) => {
          this.last = event.lastEventId || this.last;
          this.failures = 0;
          handler(JSON.parse(event.data));
        };
        source.addEventListener("inbox", heard((data) => {
          if (data.item) this.put(data.item, true);
          if (typeof data.unread_count === "number") this.setUnread(data.unread_count);
        }));
        source.addEventListener("read", heard((data) => {
          for (const item of this.items.values()) {
            if (data.ids === null || data.ids.includes(item.id)) item.read = data.read;
          }
          this.redraw();
          this.setUnread(data.unread_count);
        }));
        source.addEventListener("reset", heard(() => {
          source.close();
          this.last = null;
          this.load();
        }));
        source.addEventListener("ready", heard(() => {}));
        source.onerror = () => {
          source.close();
          this.retry();
        };
      } catch (error) {
        this.retry();
      }
    }

    retry() {
      if (this.closed) return;
      const wait = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
      this.failures += 1;
      setTimeout(() => this.listen(), wait);
    }

    put(item, newest) {
      const known = this.items.has(item.id);
      this.items.set(item.id, item);
      if (newest && !known) {
        // Newest first: rebuild the order with this one at the top.
        const rest = [...this.items.entries()].filter(([id]) => id !== item.id);
        this.items = new Map([[item.id, item], ...rest]);
      }
      this.redraw();
    }

    redraw() {
      const rows = [...this.items.values()].map((item) => this.row(item));
      this.$(".list").replaceChildren(...rows);
      this.$(".empty").hidden = this.items.size > 0;
    }

    row(item) {
      const li = document.createElement("li");
      li.className = item.read ? "item read" : "item unread";
      li.dataset.id = item.id;
      const title = document.createElement("strong");
      title.textContent = item.title || item.type;
      const body = document.createElement("p");
      body.textContent = item.body || "";
      const when = document.createElement("time");
      when.dateTime = item.created_at;
      when.textContent = new Date(item.created_at).toLocaleString();
      li.append(title, body, when);
      if (item.aggregate && item.aggregate.count > 1) {
        const count = document.createElement("span");
        count.className = "count";
        count.textContent = `${item.aggregate.count.toLocaleString()} in all`;
        li.append(count);
      }
      if (!item.read) {
        const mark = document.createElement("button");
        mark.type = "button";
        mark.className = "mark";
        mark.textContent = "Mark read";
        mark.setAttribute("aria-label", `Mark “${title.textContent}” read`);
        mark.addEventListener("click", () => this.read({ ids: [item.id] }));
        li.append(mark);
      }
      return li;
    }

    async read(what) {
      const done = await this.call("/v1/me/inbox/read", {
        method: "POST",
        body: JSON.stringify(what),
      });
      for (const item of this.items.values()) {
        if (what.all || what.ids.includes(item.id)) item.read = true;
      }
      this.redraw();
      this.setUnread(done.unread_count);
    }

    setUnread(count) {
      this.unread = count;
      const badge = this.$(".badge");
      badge.textContent = count > 99 ? "99+" : String(count);
      badge.hidden = count === 0;
      this.$(".bell").setAttribute(
        "aria-label",
        count === 0 ? "Notifications" : `Notifications, ${count} unread`,
      );
      this.dataset.unread = String(count);
    }

    toggle(open) {
      const panel = this.$(".panel");
      const show = open === undefined ? panel.hidden : open;
      panel.hidden = !show;
      this.$(".bell").setAttribute("aria-expanded", String(show));
      if (show) this.$(".all").focus();
      else this.$(".bell").focus();
    }
  }

  if (!customElements.get("clarion-inbox")) customElements.define("clarion-inbox", ClarionInbox);
})();
