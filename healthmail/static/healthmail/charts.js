/* Draws every <canvas data-chart="ID" data-chart-type="line|bar|doughnut"> with Chart.js.
   The figures come from a json_script element (id ID): {labels, datasets: [{label, data}]} or
   {labels, data}. A null is a figure the disclosure policy hid: drawn as a gap, never as zero.
   Each chart has a table with the same figures next to it (the accessible equivalent). */
(function () {
  "use strict";
  var COLOURS = ["#0b5cad", "#1a7f37", "#9a6700", "#b42318", "#6e40c9", "#57606a"];

  function datasetsOf(figures, type) {
    var sets = figures.datasets || [{ label: "", data: figures.data }];
    return sets.map(function (set, index) {
      var colour = COLOURS[index % COLOURS.length];
      var styled = { label: set.label, data: set.data, spanGaps: false };
      if (type === "doughnut") {
        styled.backgroundColor = set.data.map(function (_, i) { return COLOURS[i % COLOURS.length]; });
      } else {
        styled.backgroundColor = colour;
        styled.borderColor = colour;
        styled.fill = false;
        styled.tension = 0;
      }
      return styled;
    });
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source || typeof window.Chart === "undefined") { return; }
    var figures = JSON.parse(source.textContent);
    var type = canvas.getAttribute("data-chart-type") || "bar";
    var datasets = datasetsOf(figures, type);
    new window.Chart(canvas, {
      type: type,
      data: { labels: figures.labels, datasets: datasets },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: { legend: { display: type === "doughnut" || datasets.length > 1 } },
        scales: type === "doughnut" ? {} : { y: { beginAtZero: true, ticks: { precision: 0 } } }
      }
    });
  }

  function drawAll() {
    Array.prototype.forEach.call(document.querySelectorAll("canvas[data-chart]"), draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
