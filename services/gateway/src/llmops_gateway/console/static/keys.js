// The new key's secret goes to this tab's sessionStorage (gone with the tab), where the playground reads it:
// the server never sends a secret twice.
"use strict";
document.getElementById("use-in-playground").addEventListener("click", () => {
  const secret = document.querySelector("[data-secret]").value;
  sessionStorage.setItem("llmops.playground.key", secret);
  window.location.assign("/console/playground");
});
