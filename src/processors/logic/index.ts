export {
  AVG_SCALE,
  addEvent,
  deserializeState,
  divideHalfEven,
  emptyState,
  finalize,
  formatDecimal,
  mergeStates,
  serializeState,
  skippedValues,
  type MeasureAccumulator,
  type MeasureState,
  type MeasureStateJson,
} from './measures.ts';
export { compileGroupKey, groupKey, matchesReport } from './group.ts';
export {
  closeDue,
  nextRevision,
  type Observation,
  type RevisionDecision,
  type RevisionOptions,
  type RevisionReason,
  type RevisionRecord,
  type RevisionStatus,
} from './revisions.ts';
export { Watermark, WindowStore, windowsFor, type WindowRef, type WindowResult, type WindowTiming } from './windows.ts';
