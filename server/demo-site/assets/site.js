// Marks the footer once scripts run, so a browser shows the JavaScript was served too.
document.addEventListener("DOMContentLoaded", () => {
  const footer = document.querySelector("footer");
  if (footer) {
    const note = document.createElement("span");
    note.className = "js-note";
    note.textContent = " JavaScript loaded.";
    footer.append(note);
  }
});
