// "Needs you": pending approvals (with the diff of an apply_commit), the operator's open
// questions, failed agents.
//
// Rules kept here:
// - Cards are keyed by id and kept across redraws: a note or an answer being typed is never wiped
//   by an event; only their text parts are refreshed.
// - Buttons disable while their request is in flight; the error sentence goes to a toast and
//   inline on the card.

import { call } from "./api.js";
import { h, ago, clock, shortSha, toast } from "./ui.js";

const DIFF_LINES_MAX = 4000;

export function keyed(box, items, keyOf, make, update) {
  const seen = new Set();
  let prev = null;
  for (const item of items) {
    const key = String(keyOf(item));
    seen.add(key);
    let el = box.querySelector(`:scope > [data-key="${CSS.escape(key)}"]`);
    if (!el) {
      el = make(item);
      el.dataset.key = key;
    }
    update(el, item);
    const want = prev ? prev.nextSibling : box.firstChild;
    if (el !== want) box.insertBefore(el, want);
    prev = el;
  }
  for (const el of [...box.children]) if (!seen.has(el.dataset.key)) el.remove();
}

function setBusy(card, busy) {
  for (const b of card.querySelectorAll("button, input")) b.disabled = busy;
}

function inlineError(card, text) {
  const e = card.querySelector(".err");
  if (e) e.textContent = text || "";
}

async function run(card, verb, fields, okText) {
  setBusy(card, true);
  inlineError(card, "");
  try {
    await call(verb, fields);
    if (okText) toast(okText);
  } catch (e) {
    inlineError(card, e.message);
    toast(`${verb}: ${e.message}`, "error");
  } finally {
    setBusy(card, false);
  }
}

// ---- approvals ----

export function approvalCard(a) {
  const note = h("input", { class: "deny-note", placeholder: "note (optional)", "data-testid": `deny-note-${a.id}` });
  const approve = h("button", { class: "btn approve", "data-testid": `approve-${a.id}` }, "Approve");
  const deny = h("button", { class: "btn deny", "data-testid": `deny-${a.id}` }, "Deny");
  const card = h("div", { class: "card approval", "data-approval": a.id, "data-testid": `approval-${a.id}` },
    h("div", { class: "line" },
      h("span", { class: "kind" }), h("span", { class: "agent" }), h("span", { class: "ref mono" }),
      h("span", { class: "when muted" }), h("span", { class: "id muted" }, `#${a.id}`)),
    h("div", { class: "desc" }),
    h("div", { class: "actions" }, approve, deny, note, h("span", { class: "err" })));
  approve.addEventListener("click", () => run(card, "approve", { id: a.id }, `approved #${a.id}`));
  const doDeny = () => {
    const fields = { id: a.id };
    if (note.value.trim()) fields.note = note.value.trim();
    run(card, "deny", fields, `denied #${a.id}`);
  };
  deny.addEventListener("click", doDeny);
  note.addEventListener("keydown", (e) => { if (e.key === "Enter") doDeny(); });
  return card;
}

export function updateApproval(card, a) {
  card.querySelector(".kind").textContent = a.kind;
  card.querySelector(".kind").className = `kind k-${a.kind}`;
  const agent = card.querySelector(".agent");
  agent.replaceChildren(h("a", { href: `/agents/${encodeURIComponent(a.agent)}` }, a.agent));
  card.querySelector(".ref").textContent = a.fetched_sha ? shortSha(a.fetched_sha) : a.commit_ref || "";
  card.querySelector(".ref").title = a.commit_ref || "";
  card.querySelector(".when").textContent = a.requested_at ? `${ago(a.requested_at)} ago` : "";
  card.querySelector(".when").title = a.requested_at || "";
  card.querySelector(".desc").textContent = a.description || (a.partial ? "…" : "");
  if (a.kind === "apply_commit" && !card.querySelector("details.diff")) {
    card.querySelector(".desc").after(diffView(a.id));
  }
}

function diffView(id) {
  const body = h("div", { class: "diff-body" }, h("span", { class: "muted" }, "loading…"));
  const d = h("details", { class: "diff", "data-testid": `diff-${id}` }, h("summary", null, "diff"), body);
  let loaded = false;
  d.addEventListener("toggle", async () => {
    if (!d.open || loaded) return;
    loaded = true;
    try {
      const env = await call("diff", { id });
      body.replaceChildren(renderDiff(env));
    } catch (e) {
      loaded = false;
      body.replaceChildren(h("span", { class: "err" }, e.message));
    }
  });
  return d;
}

export function renderDiff({ subject, stat, diff }) {
  const lines = (diff || "").split("\n");
  const pre = h("pre", { class: "diff-text" });
  const frag = document.createDocumentFragment();
  for (const line of lines.slice(0, DIFF_LINES_MAX)) {
    let cls = "";
    if (line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff ") || line.startsWith("index ")) cls = "file";
    else if (line.startsWith("+")) cls = "add";
    else if (line.startsWith("-")) cls = "del";
    else if (line.startsWith("@@")) cls = "hunk";
    frag.append(h("span", { class: cls }, line), "\n");
  }
  pre.append(frag);
  if (lines.length > DIFF_LINES_MAX) pre.append(h("span", { class: "muted" }, `… ${lines.length - DIFF_LINES_MAX} more lines`));
  return h("div", null,
    subject ? h("div", { class: "subject" }, subject) : null,
    stat ? h("pre", { class: "stat" }, stat) : null,
    pre);
}

// ---- questions ----

export function questionCard(q) {
  const input = h("input", { class: "answer", placeholder: "answer", "data-testid": `answer-${q.id}` });
  const send = h("button", { class: "btn send-answer", "data-testid": `send-answer-${q.id}` }, "Answer");
  const cancel = h("button", { class: "btn small cancel", title: "withdraw this question" }, "cancel");
  const card = h("div", { class: "card question", "data-question": q.id, "data-testid": `question-${q.id}` },
    h("div", { class: "line" }, h("span", { class: "kind k-question" }, "question"),
      h("span", { class: "agent" }), h("span", { class: "when muted" }), h("span", { class: "id muted" }, `#${q.id}`)),
    h("div", { class: "desc qtext" }),
    h("div", { class: "actions" }, h("span", { class: "options" }), input, send, cancel, h("span", { class: "err" })));
  const answer = (text) => {
    if (!text.trim()) { inlineError(card, "an answer is needed"); return; }
    run(card, "answer", { id: q.id, answer: text }, `answered #${q.id}`);
  };
  send.addEventListener("click", () => {
    const picked = [...card.querySelectorAll(".options input:checked")].map((c) => c.value);
    answer(input.value.trim() || picked.join(", "));
  });
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") send.click(); });
  cancel.addEventListener("click", () => run(card, "cancel_question", { id: q.id }, `cancelled #${q.id}`));
  card._answer = answer;
  return card;
}

export function updateQuestion(card, q) {
  card.querySelector(".agent").replaceChildren(h("a", { href: `/agents/${encodeURIComponent(q.asker)}` }, q.asker));
  const when = q.deadline ? `${ago(q.asked_at)} ago · deadline ${clock(q.deadline)}` : `${ago(q.asked_at)} ago`;
  card.querySelector(".when").textContent = when;
  card.querySelector(".qtext").textContent = q.question || "…";
  const box = card.querySelector(".options");
  const sig = JSON.stringify([q.options || [], !!q.multi]);
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  box.replaceChildren(...(q.options || []).map((opt, i) => q.multi
    ? h("label", { class: "opt" }, h("input", { type: "checkbox", value: opt }), opt)
    : h("button", { class: "btn option", "data-option": i, onclick: () => card._answer(opt) }, opt)));
}

// ---- failed agents ----

function failedCard(r) {
  const card = h("div", { class: "card failed-agent", "data-failed": r.name },
    h("div", { class: "line" }, h("span", { class: "kind k-failed" }, "failed"), h("span", { class: "agent" }),
      h("span", { class: "desc note" }), h("span", { class: "spacer" }),
      h("button", { class: "btn small restart", dataset: { verb: "restart", name: r.name } }, "restart"),
      h("a", { class: "btn small", href: `/agents/${encodeURIComponent(r.name)}#logs` }, "logs")));
  return card;
}

function updateFailed(card, r, crash) {
  card.querySelector(".agent").replaceChildren(h("a", { href: `/agents/${encodeURIComponent(r.name)}` }, r.name));
  card.querySelector(".note").textContent = crash?.note || r.status_text || "";
}

export function renderNeeds(state) {
  const approvals = state.pendingApprovals();
  const questions = state.openQuestions("operator");
  const failed = state.failedAgents();
  keyed(document.getElementById("approvals"), approvals, (a) => a.id, approvalCard, updateApproval);
  keyed(document.getElementById("questions"), questions, (q) => q.id, questionCard, updateQuestion);
  keyed(document.getElementById("failed"), failed, (r) => r.name, failedCard, (c, r) => updateFailed(c, r, state.crash.get(r.name)));
  const n = approvals.length + questions.length + failed.length;
  document.getElementById("needs-count").textContent = n ? String(n) : "";
  document.getElementById("needs-empty").hidden = n > 0;
  document.getElementById("needs").classList.toggle("hot", n > 0);
  return { approvals: approvals.length, questions: questions.length, failed: failed.length };
}

