// Move focus to what the page asks for on load (an error summary after a failed submit), so keyboard
// and screen-reader users start where the problem is. The summary is role=alert as well.
document.addEventListener("DOMContentLoaded", () => {
  const target = document.querySelector("[data-focus-on-load]");
  if (target) target.focus();
});
