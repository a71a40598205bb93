import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import fc from 'fast-check';
import pino from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { ChdbEngine } from '../../src/clickhouse/http-server/engine.ts';
import { startClickHouseHttpServer } from '../../src/clickhouse/http-server/server.ts';
import { redact, redactUserInfo, redactWebhookUrl, registerSecret } from '../../src/core/secrets.ts';
import { startHttpGateway } from '../../src/ingest/http/server.ts';
import { testConfig } from '../harness/config.ts';
import { startTestNats } from '../harness/nats.ts';

/** Issue 20, point 4: how secrets are hidden, and HTTP 500 bodies that say nothing but a request id. */

describe('redaction', () => {
  it('hides user-info in URLs, lists of URLs and text around them', () => {
    expect(redactUserInfo('nats://tm:pw@127.0.0.1:4222')).toBe('nats://***@127.0.0.1:4222');
    expect(redactUserInfo('nats://a:b@n1:4222,nats://token@n2:4222')).toBe('nats://***@n1:4222,nats://***@n2:4222');
    expect(redactUserInfo('failed to reach http://default:p%40ss@ch:8123/?query=1 (ECONNREFUSED)')).toBe('failed to reach http://***@ch:8123/?query=1 (ECONNREFUSED)');
    expect(redactUserInfo('http://ch:8123/ and mail@example.com')).toBe('http://ch:8123/ and mail@example.com');
    fc.assert(
      fc.property(fc.webUrl({ withQueryParameters: true }), fc.stringMatching(/^[A-Za-z0-9._~-]{1,20}$/), fc.stringMatching(/^[A-Za-z0-9._~%-]{4,20}$/), (url, user, password) => {
        const withInfo = url.replace('://', `://${user}:${password}@`);
        expect(redactUserInfo(withInfo)).not.toContain(`${user}:${password}@`);
      }),
    );
  });

  it('shows a webhook URL as scheme and host', () => {
    expect(redactWebhookUrl('https://hooks.slack.com/services/T0/B0/XXXX')).toBe('https://hooks.slack.com/…');
    expect(redactWebhookUrl('https://example.com/?token=abc')).toBe('https://example.com/…');
    expect(redactWebhookUrl('https://u:p@example.com:8443/')).toBe('https://example.com:8443/');
    expect(redactWebhookUrl('not a url')).toBe('(an invalid URL)');
  });

  it('replaces registered secrets wherever they appear, raw, JSON-escaped or URL-encoded', () => {
    registerSecret('pa"ss\\word-1');
    registerSecret('https://hooks.example.com/T0/very-secret-path', 'https://hooks.example.com/…');
    const line = JSON.stringify({ msg: 'x', password: 'pa"ss\\word-1', url: 'https://hooks.example.com/T0/very-secret-path' });
    expect(redact(line)).toBe(JSON.stringify({ msg: 'x', password: '[redacted]', url: 'https://hooks.example.com/…' }));
    expect(redact(`auth ${encodeURIComponent('pa"ss\\word-1')}`)).toBe('auth [redacted]');
    // Too short to be told apart from ordinary text: not treated as a secret.
    registerSecret('abc');
    expect(redact('abc')).toBe('abc');
  });

  it('pino drops fields named like secrets, at any of the first levels', () => {
    const lines: string[] = [];
    const logger = pino({ redact: { paths: ['password', '*.password', '*.token', 'headers["authorization"]'], censor: '[redacted]' } }, { write: (s: string) => lines.push(s) });
    logger.info({ password: 'p1', nats: { password: 'p2' }, http: { token: 't1' }, headers: { authorization: 'Bearer t2' } }, 'hi');
    expect(lines.join('')).not.toMatch(/p1|p2|t1|t2/);
  });
});

describe('HTTP 500 bodies', () => {
  it('the ClickHouse endpoint: a failure of its own is logged in full, the client gets the query id only', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'error' }, { write: (s: string) => lines.push(s) });
    // An engine whose connections cannot be opened: the failure is not a ClickHouse error.
    const broken = { version: '26.7', timezone: 'UTC', session: () => { throw new Error('cannot open /secret/path/for-tests'); } } as unknown as ChdbEngine;
    const server = await startClickHouseHttpServer({ engine: broken, port: 0, logger });
    try {
      const res = await fetch(`${server.url}/?query=SELECT%201&query_id=q-500`);
      const body = await res.text();
      expect([res.status, res.headers.get('x-clickhouse-exception-code')]).toEqual([500, '1002']);
      expect(body).toMatch(/^Code: 1002\. DB::Exception: Internal error of the endpoint \(query id q-500\); the detail is in the server log/);
      expect(body).not.toContain('/secret/path');
      expect(lines.join('')).toContain('"queryId":"q-500"');
      expect(lines.join('')).toContain('cannot open /secret/path/for-tests');
      // ClickHouse's own errors (here found before the engine) still reach the client as a server sends them.
      const syntax = await fetch(`${server.url}/?query=${encodeURIComponent("SELECT 1; SELECT 2")}`);
      expect(await syntax.text()).toMatch(/Code: 62/);
    } finally {
      await server.close();
    }
  });

  it('the HTTP gateway: a failing route answers {error, requestId}; the log has the detail under that id', async () => {
    const nats = await startTestNats();
    const nc = await connect({ servers: nats.url });
    const lines: string[] = [];
    const logger = pino({ level: 'error' }, { write: (s: string) => lines.push(s) });
    class FailingRegistry extends Registry {
      override metrics(): Promise<string> {
        return Promise.reject(new Error('scrape failed at http://admin:hunter2-secret@10.0.0.1/'));
      }
    }
    const gateway = await startHttpGateway({ config: testConfig({ http: { port: 0 } }), js: jetstream(nc), nc, logger, registry: new FailingRegistry() });
    try {
      const res = await fetch(`${gateway.url}/metrics`);
      const body = (await res.json()) as { error: string; requestId: string };
      expect(res.status).toBe(500);
      expect(body).toEqual({ error: 'internal error', requestId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
      expect(lines.join('')).toContain(body.requestId);
      expect(lines.join('')).toContain('scrape failed');
    } finally {
      await gateway.close();
      await nc.close();
      await nats.dispose();
    }
  });
});
