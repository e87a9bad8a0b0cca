// Progressive enhancement only: every page works without this file.
"use strict";

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain HTTP on another host: no Clipboard API, so the old way through a hidden field.
  const field = document.createElement("textarea");
  field.value = text;
  field.setAttribute("readonly", "");
  field.style.position = "fixed";
  field.style.opacity = "0";
  document.body.appendChild(field);
  field.select();
  try {
    if (!document.execCommand("copy")) throw new Error("copy refused");
  } finally {
    field.remove();
  }
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const text = button.dataset.copy;
  const label = button.textContent;
  try {
    await copyText(text);
    button.classList.add("copied");
    if (!button.classList.contains("icon")) button.textContent = "Copied";
    button.setAttribute("data-copied", text);
  } catch (error) {
    button.classList.add("failed");
    window.prompt("Copy this:", text);
  }
  setTimeout(() => {
    button.classList.remove("copied", "failed");
    if (!button.classList.contains("icon")) button.textContent = label;
  }, 1500);
});
