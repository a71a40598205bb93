import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { businessDay, closeAtMs, dayEndMs, dayStartMs, nextDay } from '../../src/core/business-day.ts';
import { makeReport } from '../support/fixtures.ts';

const at = (iso: string): number => Date.parse(iso);
const HOUR = 3_600_000;

describe('business day', () => {
  it('is the local date in the zone', () => {
    expect(businessDay(at('2026-11-20T13:05:00+08:00'), 'Asia/Taipei')).toBe('2026-11-20');
    expect(businessDay(at('2026-11-20T23:59:59.999+08:00'), 'Asia/Taipei')).toBe('2026-11-20');
    expect(businessDay(at('2026-11-21T00:00:00+08:00'), 'Asia/Taipei')).toBe('2026-11-21');
    expect(businessDay(at('2026-11-20T16:00:00Z'), 'Asia/Taipei')).toBe('2026-11-21');
    expect(businessDay(at('2026-11-20T16:00:00Z'), 'UTC')).toBe('2026-11-20');
    expect(businessDay(at('2026-11-20T02:00:00Z'), 'America/St_Johns')).toBe('2026-11-19');
    expect(businessDay(at('2026-11-20T18:14:59Z'), 'Asia/Kathmandu')).toBe('2026-11-20');
    expect(businessDay(at('2026-11-20T18:15:00Z'), 'Asia/Kathmandu')).toBe('2026-11-21');
  });

  it('spans 24 hours on an ordinary day', () => {
    expect(dayStartMs('2026-11-20', 'Asia/Taipei')).toBe(at('2026-11-20T00:00:00+08:00'));
    expect(dayEndMs('2026-11-20', 'Asia/Taipei')).toBe(at('2026-11-21T00:00:00+08:00'));
    expect(dayEndMs('2026-12-31', 'UTC')).toBe(at('2027-01-01T00:00:00Z'));
  });

  it('lasts 23 and 25 hours on DST days', () => {
    expect(dayEndMs('2026-03-29', 'Europe/Berlin') - dayStartMs('2026-03-29', 'Europe/Berlin')).toBe(23 * HOUR);
    expect(dayEndMs('2026-10-25', 'Europe/Berlin') - dayStartMs('2026-10-25', 'Europe/Berlin')).toBe(25 * HOUR);
    expect(dayStartMs('2026-03-08', 'America/New_York')).toBe(at('2026-03-08T00:00:00-05:00'));
    expect(dayEndMs('2026-03-08', 'America/New_York')).toBe(at('2026-03-09T00:00:00-04:00'));
  });

  it('starts at the end of the gap when local midnight is skipped', () => {
    // Brazil began DST at 00:00 on 2018-11-04: the day started at 01:00 -02:00.
    expect(dayStartMs('2018-11-04', 'America/Sao_Paulo')).toBe(at('2018-11-04T01:00:00-02:00'));
    expect(businessDay(at('2018-11-04T01:00:00-02:00') - 1, 'America/Sao_Paulo')).toBe('2018-11-03');
    expect(dayEndMs('2018-11-03', 'America/Sao_Paulo') - dayStartMs('2018-11-03', 'America/Sao_Paulo')).toBe(24 * HOUR);
    // ...and ended it at 00:00 on 2019-02-17, repeating 23:00-24:00 of the 16th: a 25-hour day.
    expect(dayEndMs('2019-02-16', 'America/Sao_Paulo') - dayStartMs('2019-02-16', 'America/Sao_Paulo')).toBe(25 * HOUR);
    expect(dayStartMs('2026-03-08', 'America/Havana')).toBe(at('2026-03-08T01:00:00-04:00'));
  });

  it('has an empty day when the date line skips it', () => {
    expect(dayEndMs('2011-12-30', 'Pacific/Apia')).toBe(dayStartMs('2011-12-30', 'Pacific/Apia'));
    expect(businessDay(dayStartMs('2011-12-30', 'Pacific/Apia'), 'Pacific/Apia')).toBe('2011-12-31');
  });

  it('closes at the end of the day plus the close delay', () => {
    const report = makeReport({ timeZone: 'Asia/Taipei', close: { after: '3d' } });
    expect(closeAtMs('2026-11-20', report)).toBe(at('2026-11-24T00:00:00+08:00'));
  });

  it('refuses what is not a date', () => {
    for (const day of ['2026-02-30', '2026-11-20T00:00', '20261120', '']) expect(() => dayStartMs(day, 'UTC')).toThrow(/YYYY-MM-DD/);
    expect(nextDay('2028-02-28')).toBe('2028-02-29');
  });

  it('agrees with Intl on every instant around DST changes, with the day cache warm or cold', () => {
    for (const [zone, from] of [['Europe/Berlin', '2026-03-28T00:00:00Z'], ['Europe/Berlin', '2026-10-24T00:00:00Z'], ['America/Sao_Paulo', '2018-11-03T00:00:00Z'], ['Australia/Lord_Howe', '2026-04-04T00:00:00Z']] as const) {
      const intl = new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' });
      const instants = Array.from({ length: 3 * 24 * 60 / 7 }, (_, i) => at(from) + i * 7 * 60_000);
      for (const ms of [...instants, ...instants.reverse()]) expect(businessDay(ms, zone)).toBe(intl.format(ms));
    }
  });

  it('puts every instant in [dayStart, dayEnd) of its own day, whatever the zone', () => {
    const zones = ['UTC', 'Asia/Taipei', 'Europe/Berlin', 'America/New_York', 'America/Sao_Paulo', 'America/Havana', 'Australia/Lord_Howe', 'Asia/Kathmandu', 'Pacific/Chatham', 'America/St_Johns'];
    fc.assert(
      fc.property(fc.integer({ min: at('2015-01-01T00:00:00Z'), max: at('2030-12-31T00:00:00Z') }), fc.constantFrom(...zones), (ms, zone) => {
        const day = businessDay(ms, zone);
        expect(dayStartMs(day, zone)).toBeLessThanOrEqual(ms);
        expect(dayEndMs(day, zone)).toBeGreaterThan(ms);
        expect(businessDay(dayStartMs(day, zone), zone)).toBe(day);
        expect(businessDay(dayEndMs(day, zone) - 1, zone)).toBe(day);
        const hours = (dayEndMs(day, zone) - dayStartMs(day, zone)) / HOUR;
        expect(hours).toBeGreaterThanOrEqual(23);
        expect(hours).toBeLessThanOrEqual(25);
      }),
      { seed: 3, numRuns: 1_000 },
    );
  });
});
