// Runs in every document of a browser test before the page's own scripts (tests/e2e/axe.py).
// axe.run refuses to run twice at once, so runs are chained; htmx swaps are debounced and capped so a
// polling progress page does not check forever. Results go to Python through the __axeReport binding.
(() => {
  if (window.top !== window || window.__healthmailAxe || !location.protocol.startsWith('http')) return;
  if (typeof axe === 'undefined') return;
  window.__healthmailAxe = true;
  let chain = Promise.resolve();
  let pending = null;
  let swaps = 0;
  const options = __OPTIONS__;
  const here = () => location.pathname + location.search;
  const run = (trigger) => {
    chain = chain.then(() => axe.run(document, options)).then((results) => {
      const violations = results.violations.map((v) => ({
        id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl, tags: v.tags,
        nodes: v.nodes.map((n) => ({target: n.target.join(' '), html: n.html.slice(0, 300)})),
      }));
      return window.__axeReport({url: here(), trigger, violations});
    }).catch((error) => window.__axeReport({url: here(), trigger, error: String(error), violations: []}))
      .catch(() => {});
    return chain;
  };
  window.__healthmailAxeRun = run;
  window.addEventListener('load', () => run('load'));
  document.addEventListener('htmx:afterSettle', () => {
    if (pending || swaps >= 10) return;
    swaps += 1;
    pending = setTimeout(() => { pending = null; run('htmx'); }, 250);
  });
})();
