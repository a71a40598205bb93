export {
  addEvent,
  deserializeState,
  emptyState,
  finalize,
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
