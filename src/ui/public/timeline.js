// The revision timeline of one (day, group): a step line of the figure over known_at (it holds
// until the next revision), a marker per revision coloured by status, drawn with uPlot.
import { localTime } from './format.js';

const COLOURS = { preliminary: '#b26b00', final: '#1a7f37', amended: '#c4302b' };
const STATUSES = ['preliminary', 'final', 'amended'];

/** The figure as a number for plotting only; the exact decimal text is what tables show. */
const plotted = (text) => (text === undefined ? null : Number(text));

/**
 * uPlot's data columns for the revisions (ordered by revision) of one measure: x in seconds,
 * the step line, then one marker column per status. The line goes on to `until` (now, or the
 * as-of instant) at the last figure, as that is what the figure still is.
 */
export function timelineData(revisions, measure, until) {
  const xs = revisions.map((r) => r.knownAt / 1000);
  const ys = revisions.map((r) => plotted(r.measures[measure]));
  const last = xs[xs.length - 1];
  const extend = last !== undefined && until / 1000 > last;
  const columns = [
    extend ? [...xs, until / 1000] : xs,
    extend ? [...ys, ys[ys.length - 1]] : ys,
    ...STATUSES.map((status) => {
      const marks = revisions.map((r, i) => (r.status === status ? ys[i] : null));
      return extend ? [...marks, null] : marks;
    }),
  ];
  return columns;
}

/** Writes `r2 · 1 late` next to each revision's marker: which revision, and how many late events it took in. */
const labelMarkers = (revisions) => (u) => {
  const ratio = globalThis.devicePixelRatio || 1;
  const { ctx } = u;
  ctx.save();
  ctx.font = `${Math.round(12 * ratio)}px system-ui, sans-serif`;
  ctx.fillStyle = '#1d2430';
  ctx.textBaseline = 'bottom';
  revisions.forEach((r, i) => {
    const y = u.data[1][i];
    if (y === null || y === undefined) return;
    const text = `r${r.revision}${r.lateEvents ? ` · ${r.lateEvents} late` : ''}`;
    ctx.fillText(text, u.valToPos(u.data[0][i], 'x', true) + 7 * ratio, u.valToPos(y, 'y', true) - 5 * ratio);
  });
  ctx.restore();
};

export function drawTimeline(element, revisions, measure, until) {
  element.replaceChildren();
  const width = Math.max(320, element.clientWidth || 640);
  const markers = STATUSES.map((status) => ({
    label: status,
    stroke: COLOURS[status],
    fill: COLOURS[status],
    paths: () => null,
    points: { show: true, size: 11, width: 2, stroke: COLOURS[status], fill: COLOURS[status] },
  }));
  const options = {
    width,
    height: 260,
    scales: { x: { time: true } },
    axes: [{ label: 'known at' }, { label: measure, size: 70 }],
    series: [
      { label: 'known at', value: (_u, v) => (v === null ? '–' : localTime(v * 1000)) },
      { label: measure, stroke: '#1f4e99', width: 2, paths: globalThis.uPlot.paths.stepped({ align: 1 }), points: { show: false } },
      ...markers,
    ],
    legend: { live: true },
    hooks: { draw: [labelMarkers(revisions)] },
  };
  return new globalThis.uPlot(options, timelineData(revisions, measure, until), element);
}
