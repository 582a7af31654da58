// The operator's inbox and the compose box.
//
// `@name message` picks the recipient; while the caret is in the leading `@name`, a dropdown
// offers the names that start with what was typed (agents, then `manager` and `*`). Up/Down
// move, Tab or Enter complete, Escape closes. With no dropdown, Enter sends, Shift+Enter is a new
// line. POST /api/send {to, body}.

import { call } from "./api.js";
import { h, clock, toast } from "./ui.js";

const SHOWN = 8;

export function parseCompose(text) {
  const m = /^\s*@(\S+)\s+([\s\S]*\S)\s*$/.exec(text);
  if (!m) return null;
  return { to: m[1], body: m[2] };
}

export function installCompose(form, namesFn) {
  const ta = form.querySelector("textarea");
  const list = form.querySelector("ul.complete");
  const button = form.querySelector("button");
  let items = [];
  let sel = 0;

  const token = () => {
    const upto = ta.value.slice(0, ta.selectionStart);
    const m = /^\s*@([a-z0-9*-]*)$/.exec(upto);
    return m ? m[1] : null;
  };

  const close = () => {
    list.hidden = true;
    items = [];
  };

  const show = () => {
    const t = token();
    if (t === null) return close();
    const names = [...namesFn(), "manager", "*"];
    items = names.filter((n) => n.startsWith(t) && n !== t).slice(0, SHOWN);
    if (!items.length) return close();
    sel = Math.min(sel, items.length - 1);
    list.replaceChildren(...items.map((n, i) => h("li", {
      class: i === sel ? "sel" : "", "data-name": n,
      onmousedown: (e) => { e.preventDefault(); complete(n); },
    }, `@${n}`)));
    list.hidden = false;
  };

  const complete = (name) => {
    const rest = ta.value.slice(ta.selectionStart).replace(/^\S*/, "").replace(/^\s*/, "");
    ta.value = `@${name} ${rest}`;
    const pos = name.length + 2;
    ta.setSelectionRange(pos, pos);
    close();
    ta.focus();
  };

  ta.addEventListener("input", () => { sel = 0; show(); });
  ta.addEventListener("click", show);
  ta.addEventListener("blur", () => setTimeout(close, 100));
  ta.addEventListener("keydown", (e) => {
    if (!list.hidden && items.length) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        sel = (sel + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
        show();
        return;
      }
      if (e.key === "Tab" || e.key === "Enter") {
        e.preventDefault();
        complete(items[sel]);
        return;
      }
      if (e.key === "Escape") { close(); return; }
    }
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const msg = parseCompose(ta.value);
    if (!msg) {
      toast("start with @name, then the message", "error");
      ta.focus();
      return;
    }
    button.disabled = true;
    try {
      const env = await call("send", msg);
      toast(`sent to ${msg.to}${env.id !== undefined ? ` (#${env.id})` : ""}`);
      ta.value = `@${msg.to} `;
      form.dataset.lastSent = String(env.id ?? "");
    } catch (err) {
      toast(`send: ${err.message}`, "error");
    } finally {
      button.disabled = false;
      ta.focus();
    }
  });

  return { replyTo(name) { ta.value = `@${name} `; ta.focus(); ta.setSelectionRange(ta.value.length, ta.value.length); } };
}

export function renderInbox(box, inbox, onReply) {
  const follow = box.scrollHeight - box.scrollTop - box.clientHeight < 6;
  const rows = inbox.map((m) => h("div", { class: "msg", "data-msg": m.id, "data-from": m.from },
    h("div", { class: "line" },
      h("span", { class: "t muted" }, clock(m.sent_at)),
      h("a", { class: "who", href: `/agents/${encodeURIComponent(m.from)}` }, m.from),
      m.redelivered ? h("span", { class: "chip warn", title: "delivered before" }, "redelivered") : null,
      m.in_reply_to != null ? h("span", { class: "muted" }, `↩ #${m.in_reply_to}`) : null,
      h("span", { class: "spacer" }),
      h("button", { class: "btn small reply", onclick: () => onReply(m.from) }, "reply")),
    h("div", { class: "body" }, m.body + (m.size !== undefined && m.size > m.body.length ? " …" : ""))));
  box.replaceChildren(...(rows.length ? rows : [h("div", { class: "muted empty" }, "No messages for the operator.")]));
  if (follow) box.scrollTop = box.scrollHeight;
}
