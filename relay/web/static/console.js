// The console's charts (uPlot), drawn from the JSON each page carries. Each chart spans the
// window its page shows (the overview: the last hour; messages: the last 24 hours), whatever
// the amount of data, and draws lines; its axes and grid take the page's text colour, so
// they stay legible in dark mode. Each instance is kept in window.relayCharts (by holder
// id or product) for the browser tests to read its scales.
(function () {
  window.relayCharts = window.relayCharts || {};

  function ink() {
    var style = getComputedStyle(document.body);
    var text = style.color || "#333";
    return {text: text, grid: "rgba(128, 128, 128, 0.25)"};
  }

  function axis(colours, extra) {
    var out = {stroke: colours.text, grid: {stroke: colours.grid, width: 1},
               ticks: {stroke: colours.grid, width: 1}};
    for (var key in extra) out[key] = extra[key];
    return out;
  }

  function line(label, colour, extra) {
    // points stay uPlot's default: shown while data is sparse (one sample is a dot)
    var out = {label: label, stroke: colour, width: 2, spanGaps: true};
    for (var key in extra) out[key] = extra[key];
    return out;
  }

  // One time axis over [now - span, now], ticks never closer than 80 px (no overlap).
  function timeAxis(colours) { return axis(colours, {space: 80}); }

  function overview() {
    var holder = document.getElementById("traffic-chart");
    var data = document.getElementById("traffic-data");
    if (!holder || !data || typeof uPlot === "undefined") return;
    var rates = JSON.parse(data.textContent);
    holder.textContent = "";
    var now = Date.now() / 1000, colours = ink();
    var u = new uPlot({
      width: Math.max(280, holder.clientWidth || 600), height: 240,
      scales: {x: {time: true, range: [now - 3600, now]}},
      series: [{},
        line("accepted", "#2563eb"), line("refused", "#dc2626"),
        line("delivered", "#16a34a"), line("failed attempts", "#d97706")],
      axes: [timeAxis(colours), axis(colours, {label: "per minute", labelGap: 4})]
    }, [rates.time || [], rates.accepted || [], rates.refused || [], rates.delivered || [],
        rates.failed || []], holder);
    window.relayCharts["traffic-chart"] = u;
    if (!rates.time || rates.time.length === 0) {
      var note = document.createElement("small");
      note.textContent = "Collecting: the first rates appear 20 s after the relay starts.";
      holder.appendChild(note);
    }
  }

  function messages() {
    var data = document.getElementById("message-series");
    if (!data || typeof uPlot === "undefined") return;
    var series = JSON.parse(data.textContent);
    var now = Date.now() / 1000, colours = ink();
    document.querySelectorAll(".message-chart").forEach(function (holder) {
      var got = series[holder.dataset.product];
      if (!got) return;
      holder.textContent = "";
      var u = new uPlot({
        width: Math.max(280, holder.clientWidth || 600), height: 220,
        scales: {x: {time: true, range: [now - 86400, now]},
                 "%": {range: [0, 100]}},
        series: [{},
          line("delivered %", "#16a34a", {scale: "%"}),
          line("p50 latency s", "#2563eb", {scale: "s"})],
        axes: [timeAxis(colours), axis(colours, {scale: "%", label: "%"}),
               axis(colours, {scale: "s", side: 1, label: "s", grid: {show: false}})]
      }, [got.time, got.delivered_share, got.p50_s], holder);
      window.relayCharts[holder.dataset.product] = u;
    });
  }

  function draw() { overview(); messages(); }
  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSwap", overview);
})();
