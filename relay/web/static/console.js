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

// The messages page: per product, hourly delivered share (%) and median latency (s).
(function () {
  var data = document.getElementById("message-series");
  if (!data || typeof uPlot === "undefined") return;
  var series = JSON.parse(data.textContent);
  document.querySelectorAll(".message-chart").forEach(function (holder) {
    var got = series[holder.dataset.product];
    if (!got) return;
    new uPlot({
      width: Math.max(280, holder.clientWidth || 600), height: 220,
      series: [{},
        {label: "delivered %", stroke: "#16a34a", scale: "%"},
        {label: "p50 latency s", stroke: "#2563eb", scale: "s"}],
      axes: [{}, {scale: "%", label: "%"}, {scale: "s", side: 1, label: "s"}]
    }, [got.time, got.delivered_share, got.p50_s], holder);
  });
})();
