// Behaviour every signed-in page shares. No inline handlers (the Content-Security-Policy forbids them):
// a control marked data-submit-on-change submits its form when its value changes.
document.addEventListener("change", (event) => {
  const control = event.target.closest("[data-submit-on-change]");
  if (control && control.form) {
    control.form.requestSubmit();
  }
});
