// The admin page's one script: live refresh over the SSE routes, and the actions of an execution.
// The server renders every piece of HTML (escaped there); this script fetches those pieces again
// when events arrive, and calls the /admin JSON routes with the session cookie and the CSRF token.
"use strict";

(() => {
  const API = "/admin/workflows-executions";
  const EVENTS = ["on_begin", "on_resume", "on_step_begin", "on_step_success", "on_step_failure",
    "on_step_awaiting", "on_compensate_begin", "on_compensate_step_success", "on_compensate_step_failure",
    "on_timeout", "on_finish"];
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const seg = encodeURIComponent;

  function toLogin() {
    location.assign("/app/login?next=" + seg(location.pathname + location.search));
  }

  let toastTimer = 0;
  function toast(message, bad) {
    const box = document.getElementById("toast");
    box.textContent = message;
    box.classList.toggle("toast-bad", Boolean(bad));
    box.classList.add("toast-shown");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => box.classList.remove("toast-shown"), 5000);
  }

  // -- a region of the page that the server renders again --------------------------------------------

  // What to focus again after the swap: the same button, summary or link in the new HTML.
  function focusSelector(el) {
    if (el.dataset && el.dataset.act) {
      return `[data-act="${CSS.escape(el.dataset.act)}"]` + (el.dataset.name ? `[data-name="${CSS.escape(el.dataset.name)}"]` : "");
    }
    if (el.tagName === "SUMMARY" && el.parentElement.dataset.key) {
      return `details[data-key="${CSS.escape(el.parentElement.dataset.key)}"] > summary`;
    }
    if (el.tagName === "A") return `a[href="${CSS.escape(el.getAttribute("href"))}"]`;
    return null;
  }

  function region(container, onSwap) {
    let busy = false, again = false;
    async function refresh() {
      if (busy) { again = true; return; }
      busy = true;
      try {
        const url = container.dataset.src + location.search;
        const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
        if (answer.status === 401) { toLogin(); return; }
        if (!answer.ok) return;
        const html = await answer.text();
        const open = new Set([...container.querySelectorAll("details[open]")].map((d) => d.dataset.key));
        const active = container.contains(document.activeElement) ? focusSelector(document.activeElement) : null;
        container.innerHTML = html;  // the server's rendering, every value escaped there
        container.querySelectorAll("details[data-key]").forEach((d) => { if (open.has(d.dataset.key)) d.open = true; });
        const again_ = active && container.querySelector(active);
        if (again_) again_.focus();
        onSwap();
      } catch (err) {
        // Offline for a moment: the next event or poll tries again.
      } finally {
        busy = false;
        if (again) { again = false; setTimeout(refresh, 150); }
      }
    }
    let timer = 0;
    return () => { clearTimeout(timer); timer = setTimeout(refresh, 120); };
  }

  // An EventSource on a subscription route; closed (and reported) when the server ends it.
  function subscribe(path, onEvent, onEnd) {
    const source = new EventSource(path);
    EVENTS.forEach((name) => source.addEventListener(name, (e) => onEvent(name, e)));
    source.addEventListener("overflow", () => onEvent("overflow"));
    source.onopen = () => setLive(true);
    source.onerror = () => { source.close(); setLive(false); onEnd(); };
    return source;
  }

  let liveNow = false;
  function setLive(on) {
    liveNow = on;
    document.querySelectorAll(".live").forEach((el) => { el.hidden = !on; });
  }

  function every(ms, fn) {
    setInterval(() => { if (document.visibilityState === "visible") fn(); }, ms);
  }

  // -- the list ----------------------------------------------------------------------------------------

  function startList(results) {
    const sources = new Map();  // workflow id -> its EventSource, for the workflows on this page
    const refresh = region(results, watch);
    function open(wf, wait) {
      sources.set(wf, subscribe(`${API}/${seg(wf)}/subscribe`, refresh, () => {
        sources.set(wf, null);  // ended: try again later, waiting longer each time
        setTimeout(() => { if (sources.has(wf) && !sources.get(wf)) open(wf, Math.min(wait * 2, 60000)); }, wait);
      }));
    }
    function watch() {
      setLive(liveNow);
      const holder = results.querySelector("[data-workflows]");
      const wanted = new Set(holder ? JSON.parse(holder.dataset.workflows) : []);
      for (const [wf, source] of sources) {
        if (!wanted.has(wf)) { if (source) source.close(); sources.delete(wf); }
      }
      wanted.forEach((wf) => { if (!sources.has(wf)) open(wf, 2000); });
    }
    watch();
    // Executions driven by other processes send no events here: look again now and then.
    every(10000, refresh);
  }

  // -- one execution -----------------------------------------------------------------------------------

  function startDetail(box) {
    const wf = box.dataset.workflow, tx = box.dataset.transaction;
    let source = null, wait = 1000;
    const body = () => (box.querySelector("[data-finished]") || { dataset: {} }).dataset;
    // An id holding "/" cannot be named in a route's path: such an execution is polled, not streamed.
    const nothingToStream = () => body().finished === "true" || body().live === "false";
    const refresh = region(box, () => setLive(liveNow));
    function listen() {
      source = subscribe(`${API}/${seg(wf)}/${seg(tx)}/subscribe`, () => { wait = 1000; refresh(); }, () => {
        source = null;
        refresh();  // the stream ends after on_finish: show the end; else listen again later
        setTimeout(() => { if (!nothingToStream() && !source) listen(); }, wait);
        wait = Math.min(wait * 2, 30000);
      });
    }
    if (!nothingToStream()) listen();
    // Steps run by other processes send no events here: look again now and then.
    every(5000, () => { if (body().finished !== "true") refresh(); });
    setupActions(box, wf, tx, refresh);
  }

  async function post(path, body) {
    const answer = await fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf(), Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (answer.status === 401 && !csrf()) { toLogin(); return null; }
    const data = await answer.json().catch(() => ({}));
    if (!answer.ok) throw new Error(data.message || `The server answered ${answer.status}.`);
    return data;
  }

  // Open a dialog; on "confirm", run act() and close when it succeeds, else show its error.
  function ask(dialog, errorBox, act) {
    errorBox.hidden = true;
    const form = dialog.querySelector("form");
    form.onsubmit = async (e) => {
      if (!e.submitter || e.submitter.value !== "confirm") return;
      e.preventDefault();
      e.submitter.disabled = true;
      try {
        await act();
        dialog.close();
      } catch (err) {
        errorBox.textContent = err.message;
        errorBox.hidden = false;
      } finally {
        e.submitter.disabled = false;
      }
    };
    dialog.showModal();
  }

  function setupActions(box, wf, tx, refresh) {
    const confirm = document.getElementById("confirm-dialog");
    const complete = document.getElementById("complete-dialog");
    const confirmError = document.getElementById("confirm-error");
    const completeError = document.getElementById("complete-error");
    document.getElementById("complete-body").addEventListener("input", () => { completeError.hidden = true; });
    function confirmWith(title, text, button, act) {
      document.getElementById("confirm-title").textContent = title;
      // The text's parts: strings, and ids as [value] (shown as code); built as nodes, never as HTML.
      document.getElementById("confirm-text").replaceChildren(...[].concat(text).map((part) => {
        if (typeof part === "string") return document.createTextNode(part);
        const code = document.createElement("code");
        code.textContent = part[0];
        return code;
      }));
      document.getElementById("confirm-go").textContent = button;
      ask(confirm, confirmError, act);
    }
    box.addEventListener("click", (e) => {
      const button = e.target.closest("[data-act]");
      if (!button) return;
      const step = button.dataset.name;
      if (button.dataset.act === "cancel") {
        confirmWith("Cancel this execution?",
          ["The completed steps of transaction ", [tx], " are compensated (rolled back) and it ends reverted."],
          "Cancel execution", async () => {
            const data = await post(`${API}/${seg(wf)}/${seg(tx)}/cancel`);
            toast(`Cancelled: the execution is ${data.workflow_execution.state}.`);
            refresh();
          });
      } else if (button.dataset.act === "retry") {
        confirmWith(`Retry step ${step}?`, `Its invoke is called again, and the step waits for its response again.`,
          "Retry step", async () => {
            await post(`${API}/${seg(wf)}/steps/retry`, { transaction_id: tx, step_id: step });
            toast(`Step ${step} was invoked again.`);
            refresh();
          });
      } else if (button.dataset.act === "complete") {
        document.getElementById("complete-step").textContent = step;
        ask(complete, completeError, async () => {
          const outcome = complete.querySelector('input[name="outcome"]:checked').value;
          const text = document.getElementById("complete-body").value.trim();
          let response;
          try { response = text ? JSON.parse(text) : undefined; } catch (err) {
            throw new Error(`The body is not valid JSON: ${err.message}`);
          }
          await post(`${API}/${seg(wf)}/steps/${outcome}`,
            { transaction_id: tx, step_id: step, action: button.dataset.action, response });
          toast(`Step ${step} was completed with ${outcome}.`);
          refresh();
        });
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const results = document.getElementById("results");
    if (results) startList(results);
    const execution = document.getElementById("execution");
    if (execution) startDetail(execution);
  });
})();
