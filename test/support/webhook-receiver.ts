import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { useFixture } from '../harness/fixture.ts';

export type WebhookRequest = { path: string; id: string; body: string };
export type WebhookReceiver = { base: string; requests: WebhookRequest[]; close: () => Promise<void> };

/** An HTTP receiver on a free loopback port that takes every POST (200) and records its path, alert id and body. */
export function startWebhookReceiver(): Promise<WebhookReceiver> {
  const requests: WebhookRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ path: req.url ?? '', id: decodeURIComponent(String(req.headers['x-tidemark-alert-id'])), body: Buffer.concat(chunks).toString() });
      res.writeHead(200).end();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    resolve({
      base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      requests,
      close: () => new Promise<void>((done) => server.close(() => done())),
    });
  }));
}

/** startWebhookReceiver for the whole test file (see useFixture). */
export const useWebhookReceiver = (): WebhookReceiver & { dispose: () => Promise<void> } =>
  useFixture(async () => {
    const receiver = await startWebhookReceiver();
    return { ...receiver, dispose: receiver.close };
  });
