// The overview's chart: pushes and deliveries per minute, from the JSON the page carries.
// Drawn again after each htmx refresh of the page's live part.
(function () {
  function draw() {
    var holder = document.getElementById("traffic-chart");
    var data = document.getElementById("traffic-data");
    if (!holder || !data || typeof uPlot === "undefined") return;
    var rates = JSON.parse(data.textContent);
    holder.textContent = "";
    if (!rates.time || rates.time.length === 0) {
      holder.textContent = "Collecting: the first rates appear 20 s after the relay starts.";
      return;
    }
    var width = Math.max(280, holder.clientWidth || 600);
    new uPlot({
      width: width, height: 240,
      series: [{},
        {label: "accepted", stroke: "#2563eb"},
        {label: "refused", stroke: "#dc2626"},
        {label: "delivered", stroke: "#16a34a"},
        {label: "failed attempts", stroke: "#d97706"}],
      axes: [{}, {label: "per minute"}]
    }, [rates.time, rates.accepted, rates.refused, rates.delivered, rates.failed], holder);
  }
  document.addEventListener("DOMContentLoaded", draw);
  document.body.addEventListener("htmx:afterSwap", draw);
})();
