// The page's script: equations through KaTeX, charts through plotly.js. window.siteReady settles when
// both are done, so a browser check knows when the page is complete.
window.siteReady = (async () => {
  renderEquations();
  await drawCharts();
})();

// Each span.math holds TeX as written in the notebook. A formula KaTeX cannot parse is shown as a red
// .katex-error (throwOnError: false) that the browser check reports; the rest of the page still renders.
function renderEquations() {
  const equations = document.querySelectorAll('.math');
  if (equations.length === 0) return;
  if (!window.katex) {
    console.error('KaTeX did not load (assets/katex/katex.min.js): ' + equations.length + ' equations stay as TeX.');
    return;
  }
  for (const element of equations) {
    katex.render(element.textContent, element, {
      displayMode: element.classList.contains('display'),
      throwOnError: false,
    });
  }
}

// A chart is <figure class="duallora-chart"> with a static <svg>, its plotly figure as JSON in
// <script class="duallora-plotly"> and a <figcaption>. The interactive chart replaces the static one
// only once it is drawn; on any failure the static picture stays and the fault goes to the console.
async function drawCharts() {
  const figures = [...document.querySelectorAll('figure.duallora-chart')];
  await Promise.all(figures.map(async (figure, index) => {
    try {
      await drawChart(figure);
    } catch (error) {
      const caption = figure.querySelector('figcaption')?.textContent.trim() ?? '';
      console.error(`chart ${index + 1} (${caption}): ${error}`);
    }
  }));
}

async function drawChart(figure) {
  if (!window.Plotly) throw new Error('plotly.js did not load (assets/plotly.min.js)');
  const spec = JSON.parse(figure.querySelector('script.duallora-plotly').textContent);
  const staticChart = figure.querySelector(':scope > svg');
  const plot = document.createElement('div');
  plot.className = 'plot';
  figure.insertBefore(plot, figure.querySelector('figcaption'));
  try {
    await Plotly.newPlot(plot, spec.data, spec.layout ?? {}, { responsive: true, displaylogo: false });
  } catch (error) {
    plot.remove();
    throw error;
  }
  if (staticChart) staticChart.style.display = 'none';
  const fit = () => fitToColumn(figure, plot, spec.layout?.width, spec.layout?.height);
  fit();
  window.addEventListener('resize', fit);
}

// A chart keeps the pixel size it was laid out for (a wide heatmap figure can be 960 px), which may be
// more than the column holds. The static SVG shrinks with the page; the interactive chart is scaled
// down the same way, by a CSS transform (plotly maps the pointer through it), never up.
function fitToColumn(figure, plot, width, height) {
  if (!width || !height) return;   // a chart without a fixed size takes the column's width itself
  const scale = Math.min(1, figure.clientWidth / width);
  plot.style.transformOrigin = '0 0';
  plot.style.transform = scale < 1 ? `scale(${scale})` : '';
  // A transform leaves the layout box as it was: give back the height the shrunk chart no longer uses.
  plot.style.marginBottom = scale < 1 ? `${-(1 - scale) * height}px` : '';
}
