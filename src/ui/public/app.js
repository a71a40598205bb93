// The page: reports → days → groups → revision timeline, realtime windows, alerts, sagas and
// reconciliation, refreshed by polling the JSON API (/ui/api) every POLL_MS without a reload.
import { alertLine, fromLocalInput, groupLabel, localTime, measuresLine, sizeLabel, toLocalInput } from './format.js';
import { drawTimeline } from './timeline.js';

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

const state = { reports: [], report: null, measure: null, day: null, groupKey: null, asOf: undefined, dayData: null, token: sessionStorage.getItem('tidemark-token') ?? '' };
/** Last JSON drawn per panel: a panel is redrawn only when its data changed, so focus and scroll stay put. */
const drawn = new Map();

class Unauthorized extends Error {}

async function api(path) {
  const headers = state.token ? { authorization: `Bearer ${state.token}` } : {};
  const res = await fetch(`/ui/api/${path}`, { headers });
  if (res.status === 401) throw new Unauthorized('token needed');
  const body = await res.json();
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
  return body;
}

const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('data-') || k.startsWith('aria-')) node.setAttribute(k, v);
    else node[k] = v;
  }
  node.append(...children);
  return node;
};

/** Redraws a panel when its data changed; keeps keyboard focus on the element with the same data-key. */
function redraw(panel, data, draw) {
  const text = JSON.stringify(data);
  if (drawn.get(panel) === text) return false;
  drawn.set(panel, text);
  const focused = document.activeElement?.dataset?.key;
  draw();
  if (focused !== undefined) document.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
  return true;
}

/** ↑ ↓ Home End move the focus between the buttons of a list; Enter and Space press them (native buttons). */
function arrowKeys(container, selector) {
  container.addEventListener('keydown', (event) => {
    const items = [...container.querySelectorAll(selector)];
    const at = items.indexOf(document.activeElement);
    if (at < 0) return;
    const next = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: items.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    items[Math.max(0, Math.min(items.length - 1, next))]?.focus();
  });
}

const currentReport = () => state.reports.find((r) => r.name === state.report);

function drawReports() {
  $('report').replaceChildren(...state.reports.map((r) => el('option', { value: r.name, textContent: `${r.name} (${r.timeZone})` })));
  $('report').value = state.report ?? '';
  drawMeasures();
}

function drawMeasures() {
  const report = currentReport();
  $('measure').replaceChildren(...(report?.measures ?? []).map((m) => el('option', { value: m, textContent: m })));
  if (report && !report.measures.includes(state.measure)) state.measure = report.measures[0] ?? null;
  $('measure').value = state.measure ?? '';
}

async function refreshDays() {
  const { days } = await api(`reports/${encodeURIComponent(state.report)}/days`);
  if (state.day === null && days.length) state.day = days[0].day;
  redraw('days', { days, selected: state.day }, () => {
    $('days').replaceChildren(...days.map((d) => {
      const status = d.amended ? 'amended' : d.final === d.groups ? 'final' : 'preliminary';
      const button = el('button', { type: 'button', class: `day ${status}`, 'data-key': `day:${d.day}`, 'aria-current': String(d.day === state.day) },
        el('span', { class: 'when', textContent: d.day }),
        el('span', { class: 'what', textContent: `${d.groups} group${d.groups === 1 ? '' : 's'} · ${status} · up to rev ${d.maxRevision}` }));
      button.addEventListener('click', () => selectDay(d.day));
      return el('li', {}, button);
    }));
    if (!days.length) $('days').append(el('li', { class: 'empty', textContent: 'No revisions yet: publish some events' }));
  });
}

async function refreshDay() {
  if (!state.day) return;
  const asOf = state.asOf === undefined ? '' : `?asOf=${state.asOf}`;
  const data = await api(`reports/${encodeURIComponent(state.report)}/days/${state.day}${asOf}`);
  state.dayData = data;
  if (state.groupKey === null || !data.groups.some((g) => g.groupKey === state.groupKey)) state.groupKey = data.groups[0]?.groupKey ?? null;
  redraw('groups', { data, selected: state.groupKey, measure: state.measure }, drawGroups);
  redraw('timeline', { group: data.groups.find((g) => g.groupKey === state.groupKey) ?? null, measure: state.measure, asOf: state.asOf }, drawGroupTimeline);
}

function drawGroups() {
  const data = state.dayData;
  $('groups-caption').textContent = `${data.report} · ${data.day} (${data.timeZone})${data.asOf ? ` as known at ${localTime(Date.parse(data.asOf))}` : ''}`;
  $('groups').tBodies[0].replaceChildren(...data.groups.map((g) => {
    const button = el('button', { type: 'button', class: 'group', 'data-key': `group:${g.groupKey}`, 'aria-current': String(g.groupKey === state.groupKey), textContent: g.label });
    button.addEventListener('click', () => selectGroup(g.groupKey));
    return el('tr', { class: g.groupKey === state.groupKey ? 'selected' : '' },
      el('th', { scope: 'row' }, button),
      el('td', { class: 'num', textContent: g.latest.measures[state.measure] ?? '–' }),
      el('td', {}, el('span', { class: `badge ${g.latest.status}`, textContent: g.latest.status })),
      el('td', { class: 'num', textContent: String(g.latest.revision) }),
      el('td', { class: 'num', textContent: String(g.latest.lateEvents) }));
  }));
  if (!data.groups.length) $('groups').tBodies[0].append(el('tr', {}, el('td', { colSpan: 5, class: 'empty', textContent: 'No revisions for this day' + (data.asOf ? ' at that time' : '') })));
}

function drawGroupTimeline() {
  const group = state.dayData?.groups.find((g) => g.groupKey === state.groupKey);
  const figure = $('timeline');
  const chart = $('chart');
  if (!group) {
    chart.replaceChildren();
    figure.dataset.points = '0';
    $('revisions').tBodies[0].replaceChildren();
    return;
  }
  const revisions = group.revisions;
  const until = state.asOf ?? Date.now();
  drawTimeline(chart, revisions, state.measure, until);
  figure.dataset.points = String(revisions.length);
  figure.dataset.group = group.label;
  const last = revisions[revisions.length - 1];
  const summary = `${group.label}, ${state.dayData.day}: ${revisions.length} revision${revisions.length === 1 ? '' : 's'}, ${state.measure} now ${last.measures[state.measure] ?? '–'} (${last.status}), ${last.lateEvents} late events`;
  chart.setAttribute('aria-label', `Revision timeline of ${summary}`);
  $('timeline-caption').textContent = summary;
  const names = state.dayData.measures;
  $('revisions').tBodies[0].replaceChildren(...[...revisions].reverse().map((r) => el('tr', {},
    el('td', { class: 'num', textContent: String(r.revision) }),
    el('td', {}, el('span', { class: `badge ${r.status}`, textContent: r.status })),
    el('td', { textContent: r.reason }),
    el('td', { textContent: localTime(r.knownAt) }),
    el('td', { class: 'num', textContent: String(r.events) }),
    el('td', { class: 'num', textContent: String(r.lateEvents) }),
    el('td', { textContent: measuresLine(r.measures, names) }))));
}

async function refreshRealtime() {
  const { windows } = await api(`reports/${encodeURIComponent(state.report)}/realtime?limit=12`);
  const names = currentReport()?.measures ?? [];
  redraw('realtime', windows, () => {
    $('realtime').tBodies[0].replaceChildren(...windows.map((w) => el('tr', {},
      el('td', { textContent: `${localTime(w.windowStart).slice(5, 16)} – ${localTime(w.windowEnd).slice(11, 16)} (${sizeLabel(w.sizeMs)})` }),
      el('td', { textContent: w.label }),
      el('td', { class: 'num', textContent: String(w.events) }),
      el('td', { textContent: measuresLine(w.measures, names) }),
      el('td', {}, el('span', { class: `badge ${w.timing}`, textContent: w.timing.replace('_', '-') })),
      el('td', { class: 'num', textContent: String(w.emissions) }),
      el('td', { textContent: `${w.closed ? 'closed' : 'open'}${w.lateRefused ? `, ${w.lateRefused} refused as late` : ''}` }))));
    if (!windows.length) $('realtime').tBodies[0].append(el('tr', {}, el('td', { colSpan: 7, class: 'empty', textContent: 'No windows yet' })));
  });
}

async function refreshAlerts() {
  const { alerts } = await api('alerts?limit=20');
  redraw('alerts', alerts, () => {
    $('alerts').replaceChildren(...alerts.map((a) => el('li', { class: `alert ${a.kind}` },
      el('span', { class: 'kind', textContent: a.kind }),
      el('span', { class: 'source', textContent: a.source }),
      el('time', { dateTime: new Date(a.raisedAt).toISOString(), textContent: localTime(a.raisedAt) }),
      el('p', { textContent: alertLine(a, groupLabel) }))));
    if (!alerts.length) $('alerts').append(el('li', { class: 'empty', textContent: 'No alerts' }));
  });
}

const counts = (byStatus) => Object.entries(byStatus).flatMap(([status, n]) => [el('dt', { textContent: status }), el('dd', { textContent: String(n) })]);

async function refreshSummaries() {
  const [sagas, recon] = await Promise.all([api('sagas'), api('reconciliation')]);
  redraw('summaries', { sagas, recon }, () => {
    $('sagas').replaceChildren(...counts(sagas.byStatus));
    if (!Object.keys(sagas.byStatus).length) $('sagas').append(el('dt', { textContent: 'sagas' }), el('dd', { textContent: 'none yet' }));
    $('parked').replaceChildren(...sagas.parked.map((p) => el('li', { textContent: `parked: ${p.sagaId} (${p.name}) at ${p.step}: ${p.failure}` })));
    $('recon').replaceChildren(...counts(recon.byStatus));
    if (!Object.keys(recon.byStatus).length) $('recon').append(el('dt', { textContent: 'discrepancies' }), el('dd', { textContent: 'none' }));
    $('recon-open').replaceChildren(...recon.open.map((o) => el('li', { textContent: `open: ${o.name} ${o.type} × ${o.count}` })));
  });
}

function selectDay(day) {
  state.day = day;
  state.groupKey = null;
  drawn.delete('days');
  refresh();
}

function selectGroup(groupKey) {
  state.groupKey = groupKey;
  refresh();
}

let timer;
let running = false;

/** One round of reads; a failed panel says so in the status line and the next round tries again. */
async function refresh() {
  clearTimeout(timer);
  if (running) return;
  running = true;
  try {
    if (!state.reports.length) {
      state.reports = (await api('reports')).reports;
      state.report ??= state.reports[0]?.name ?? null;
      drawReports();
    }
    if (state.report) {
      await refreshDays();
      await refreshDay();
      await Promise.all([refreshRealtime(), refreshAlerts(), refreshSummaries()]);
    }
    $('token-box').hidden = true;
    $('live').textContent = `live · updated ${localTime(Date.now()).slice(11)}`;
    $('live').className = 'ok';
  } catch (err) {
    if (err instanceof Unauthorized) $('token-box').hidden = false;
    $('live').textContent = `not updating: ${err.message}`;
    $('live').className = 'error';
  } finally {
    running = false;
    timer = setTimeout(refresh, POLL_MS);
  }
}

function wire() {
  $('report').addEventListener('change', () => {
    state.report = $('report').value;
    state.day = null;
    state.groupKey = null;
    drawn.clear();
    drawMeasures();
    refresh();
  });
  $('measure').addEventListener('change', () => {
    state.measure = $('measure').value;
    refresh();
  });
  $('as-of').addEventListener('change', () => {
    state.asOf = fromLocalInput($('as-of').value);
    refresh();
  });
  $('as-of-now').addEventListener('click', () => {
    $('as-of').value = '';
    state.asOf = undefined;
    refresh();
  });
  $('token-use').addEventListener('click', () => {
    state.token = $('token').value.trim();
    sessionStorage.setItem('tidemark-token', state.token);
    refresh();
  });
  arrowKeys($('days'), 'button');
  arrowKeys($('groups'), 'button.group');
  let resize;
  window.addEventListener('resize', () => {
    clearTimeout(resize);
    resize = setTimeout(() => {
      drawn.delete('timeline');
      refresh();
    }, 200);
  });
  $('as-of').max = toLocalInput(Date.now() + 86_400_000);
}

wire();
refresh();
