// The privacy page works without this script; it only adds conveniences.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Ask once more before deleting someone's data for good.
  const deleteForm = document.getElementById("delete-form");
  if (deleteForm) {
    deleteForm.addEventListener("submit", (event) => {
      if (!window.confirm("Delete this person's data from this device for good?")) {
        event.preventDefault();
      }
    });
  }
  // One button to open or close every payload.
  const toggle = document.getElementById("toggle-all");
  const all = Array.from(document.querySelectorAll(".entries details"));
  if (toggle && all.length) {
    toggle.hidden = false;
    toggle.addEventListener("click", () => {
      const open = !all.every((d) => d.open);
      all.forEach((d) => { d.open = open; });
      toggle.textContent = open ? "Close all" : "Open all";
    });
  }
});
