// A button with data-confirm asks before it submits (the CSP allows no inline handler).
document.addEventListener("click", function (event) {
  var button = event.target.closest && event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.getAttribute("data-confirm"))) {
    event.preventDefault();
  }
});
