// Lifecycle buttons, wherever they are drawn: one delegated click handler for every
// `button[data-verb][data-name]`. Destructive verbs (data-confirm="1") need a second click
// within 4 s; the button says "confirm kill?" meanwhile.

import { call } from "./api.js";
import { arm, disarm, isArmed, toast } from "./ui.js";

// Button verb -> [host socket verb, fields for the agent NAME].
const VERBS = {
  start: (name) => ["start", { scope: { agent_names: [name] } }],
  stop: (name) => ["stop", { scope: { agent_names: [name] }, graceful: true }],
  restart: (name) => ["restart", { name }],
  kill: (name) => ["kill", { name }],
  rebuild: (name) => ["rebuild", { name }],
  destroy: (name) => ["destroy", { name }],
  pause: (name) => ["set_paused", { name, paused: true }],
  resume: (name) => ["set_paused", { name, paused: false }],
};

export function installLifecycle(root = document, { redraw } = {}) {
  root.addEventListener("click", async (e) => {
    const btn = e.target.closest("button[data-verb][data-name]");
    if (!btn || !VERBS[btn.dataset.verb]) return;
    e.preventDefault();
    const { verb, name } = btn.dataset;
    const key = `${verb}:${name}`;
    if (btn.dataset.confirm === "1" && !isArmed(key)) {
      const label = btn.textContent;
      arm(key, () => {
        btn.classList.remove("armed");
        btn.textContent = label;
        redraw?.(name);
      });
      btn.classList.add("armed");
      btn.textContent = `confirm ${verb}?`;
      return;
    }
    disarm(key);
    const [wireVerb, fields] = VERBS[verb](name);
    btn.disabled = true;
    btn.classList.remove("armed");
    try {
      await call(wireVerb, fields);
      toast(`${verb} ${name}: ok`);
    } catch (err) {
      toast(`${verb} ${name}: ${err.message}`, "error");
    } finally {
      btn.disabled = false;
      redraw?.(name);
    }
  });
}
