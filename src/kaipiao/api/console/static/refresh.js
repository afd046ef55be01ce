// The overview's live refresh: every N seconds (data-refresh on <main>), fetch the page again
// and swap in its <main>, unless the operator paused it (WCAG 2.2.1: a time limit the user can
// turn off; a <meta refresh> would reload the whole page and move focus).
(function () {
  const main = document.querySelector("main[data-refresh]");
  const toggle = document.getElementById("refresh-toggle");
  if (!main || !toggle) return;
  const seconds = Number(main.dataset.refresh) * 1000;
  let paused = false;
  toggle.hidden = false;
  toggle.addEventListener("click", function () {
    paused = !paused;
    toggle.setAttribute("aria-pressed", String(paused));
  });
  setInterval(async function () {
    if (paused || document.hidden) return;
    try {
      const answer = await fetch(location.href, { credentials: "same-origin" });
      if (!answer.ok || answer.redirected) return;
      const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
      const next = fresh.querySelector("main");
      if (next) main.innerHTML = next.innerHTML;
    } catch (_) { /* the next tick tries again */ }
  }, seconds);
})();
